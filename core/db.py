"""Database engine and sessions: SQLite (WAL) in the data dir by default, PostgreSQL via DATABASE_URL."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlmodel import Session, create_engine

from core.config import data_dir

MIGRATIONS = Path(__file__).parent / "migrations"


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        return f"sqlite:///{data_dir() / 'aduan.db'}"
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


@cache
def _engine_for(url: str) -> sa.Engine:
    return make_engine(url)


def get_engine() -> sa.Engine:
    """The engine for the current DATABASE_URL (cached per URL, so tests can switch)."""
    return _engine_for(database_url())


@contextmanager
def session_scope(engine: sa.Engine | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine or get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def insert_ignore(session: Session, table: sa.Table, unique: list[str]):  # type: ignore[no-untyped-def]
    """INSERT ... ON CONFLICT (unique) DO NOTHING, on SQLite and PostgreSQL alike: the idempotent
    insert that bulk paths use instead of catching IntegrityError row by row."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing(index_elements=unique)


def one_of(session: Session, col: Any, values: Iterable[Any]) -> Any:
    """`col IN (values)` for a batch's ids. On PostgreSQL it is `col = ANY(array)`, one parameter:
    the statement is the same whatever the number of values, so psycopg parses it once, while an
    IN list of a hundred ids (past psycopg's 50-parameter cache) was parsed again on every call,
    about 2 ms each, 15 times per batch."""
    values = list(values)
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        return col == sa.any_(sa.bindparam(None, values, type_=ARRAY(col.type)))
    # SQLite: the list as one JSON parameter read by json_each, for a like reason: an expanded IN list
    # coerces every value and makes a new statement string per length, compiled and prepared anew.
    return col.in_(sa.select(sa.literal_column("value")).select_from(
        sa.func.json_each(sa.bindparam(None, orjson.dumps(values).decode(), type_=sa.String))))


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str | None = None) -> str:
    """Bring the schema to the newest revision; returns that revision id."""
    from alembic import command
    from alembic.script import ScriptDirectory

    url = url or database_url()
    cfg = alembic_config(url)
    command.upgrade(cfg, "head")
    return ScriptDirectory.from_config(cfg).get_current_head() or ""
