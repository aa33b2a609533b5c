"""Start real Redis and PostgreSQL servers for the test suite (and the benchmarks).

PostgreSQL comes from Debian's postgresql package (initdb/pg_ctl); as root the cluster runs
as the `postgres` user. Both live in temporary directories and stop with the session.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_start(tmp: Path) -> tuple[str, subprocess.Popen]:
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp),
                             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    _wait_port(port, proc, "redis-server")
    return url, proc


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    exe = shutil.which(name)
    if exe is None:
        raise RuntimeError(f"{name} not found: install Debian's postgresql package (make test does)")
    return exe


def pg_cluster_start(tmp: Path | None = None) -> tuple[str, Callable[[], None]]:
    """initdb + pg_ctl start in a fresh directory; returns (base URL without database, stop)."""
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="aduan-pg-"))  # outside pytest's private tmp (postgres must read it)
    datadir = tmp / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        pw = pwd.getpwnam("postgres")
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_user, _pg_bin("initdb"), "-D", str(datadir), "-U", "aduan", "--auth=trust",
                    "-E", "UTF8", "--no-locale"], check=True, stdout=subprocess.DEVNULL)
    opts = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    subprocess.run([*as_user, _pg_bin("pg_ctl"), "-D", str(datadir), "-o", opts, "-l", str(tmp / "pg.log"),
                    "-w", "start"], check=True, stdout=subprocess.DEVNULL)

    def stop() -> None:
        subprocess.run([*as_user, _pg_bin("pg_ctl"), "-D", str(datadir), "-m", "immediate", "stop"],
                       check=False, stdout=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)

    return f"postgresql://aduan@127.0.0.1:{port}", stop


def _wait_port(port: int, proc: subprocess.Popen, name: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{name} did not start on port {port}")


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 60, why: Callable[[], str] | None = None) -> float:
    """Wait until `url` answers 200 while `proc` lives; returns the seconds it took (fails with the log)."""
    import httpx

    started = time.monotonic()
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() - started > timeout:
            proc.kill()
            raise AssertionError(f"{url} not ready after {time.monotonic() - started:.0f} s\n" + (why() if why else ""))
        time.sleep(0.1)
