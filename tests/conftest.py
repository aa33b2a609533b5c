"""Shared fixtures: real Redis (Debian's redis-server), real PostgreSQL (initdb/pg_ctl) and SQLite,
fake providers on 127.0.0.1, and a guard that fails any test reaching beyond loopback."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.services import free_port, pg_cluster_start, redis_start  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address):  # type: ignore[no-untyped-def]
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        try:
            ok = ipaddress.ip_address(host).is_loopback
        except ValueError:
            ok = host == "localhost"
        if not ok:
            raise AssertionError(f"test tried to reach {address!r}: only 127.0.0.1 is allowed in tests")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Like python-telegram-bot's suite: any connection beyond loopback fails the test."""
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


# ------------------------------------------------------------------ services


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url, proc = redis_start(tmp_path_factory.mktemp("redis"))
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url, stop = pg_cluster_start(tmp_path_factory.mktemp("pg"))
    yield url
    stop()


def _create_pg_database(base_url: str) -> str:
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(base_url + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base_url}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, migrated database: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'aduan.db'}"
    return _create_pg_database(request.getfixturevalue("pg_server"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'aduan.db'}"


# ------------------------------------------------------------------ the hub under test


def base_config() -> dict:
    """config.yaml as shipped, with every channel disabled: tests enable what they use."""
    raw = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    for block in raw.get("channels", {}).values():
        block["enabled"] = False
    return raw


class Hub:
    """Environment of one hub under test: config file, data dir, database and Redis."""

    def __init__(self, tmp: Path, database_url: str, redis_url: str | None, monkeypatch: pytest.MonkeyPatch):
        self.tmp, self.database_url, self.redis_url, self.mp = tmp, database_url, redis_url, monkeypatch
        self.data_dir = tmp / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.config_path = tmp / "config.yaml"
        self.raw = base_config()
        mp = monkeypatch
        mp.setenv("ADUAN_DATA_DIR", str(self.data_dir))
        mp.setenv("ADUAN_CONFIG", str(self.config_path))
        mp.setenv("DATABASE_URL", database_url)
        if redis_url:
            mp.setenv("REDIS_URL", redis_url)
        else:
            mp.delenv("REDIS_URL", raising=False)

    def configure(self, **channels: dict) -> "Hub":
        """Write the config with the given channel blocks merged in, and reset process caches."""
        for name, block in channels.items():
            self.raw.setdefault("channels", {}).setdefault(name, {}).update(block)
        self.config_path.write_text(yaml.safe_dump(self.raw, allow_unicode=True), encoding="utf-8")
        reset_caches()
        from core.db import migrate

        migrate()
        return self

    @property
    def cfg(self):  # type: ignore[no-untyped-def]
        from core.config import get_config

        return get_config()

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def run_worker(self) -> None:
        """Drain the queues with a real RQ worker in this process (burst mode)."""
        from rq import SimpleWorker
        from rq.serializers import JSONSerializer

        from core.queue import QUEUES
        from core.redisconn import get_redis

        SimpleWorker(list(QUEUES), connection=get_redis(), serializer=JSONSerializer).work(burst=True)

    def session(self):  # type: ignore[no-untyped-def]
        from sqlmodel import Session

        from core.db import get_engine

        return Session(get_engine())


def reset_caches() -> None:
    from core import channel_switch, channels, classify, config, db, redisconn

    config.get_config.cache_clear()
    channel_switch.forget()
    channels._INSTANCES.clear()
    if hasattr(classify, "_CACHE"):
        classify._CACHE.clear()
    db._engine_for.cache_clear()
    redisconn._client.cache_clear()


def _hub(tmp_path: Path, db_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    h = Hub(tmp_path, db_url, redis_url, monkeypatch)
    h.configure()
    yield h
    reset_caches()


@pytest.fixture
def hub(tmp_path: Path, database_url: str, redis_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    """A hub on real Redis and a fresh database (parametrised: SQLite and PostgreSQL)."""
    yield from _hub(tmp_path, database_url, redis_server, monkeypatch)


@pytest.fixture
def sqlite_hub(tmp_path: Path, sqlite_url: str, redis_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    """The same hub on SQLite only, for tests whose subject is not the database."""
    yield from _hub(tmp_path, sqlite_url, redis_server, monkeypatch)


@pytest.fixture
def free_tcp_port() -> int:
    return free_port()


@pytest.fixture
def wait_for():  # type: ignore[no-untyped-def]
    def _wait(predicate, timeout: float = 15.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise AssertionError("condition not met within %.0fs" % timeout)
    return _wait


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [f"redis-server: {shutil.which('redis-server')}", f"python: {sys.version.split()[0]}"]
