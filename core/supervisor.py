"""`aduan up`: one command that runs the whole hub as supervised processes.

Start order: embedded Redis (when no REDIS_URL), migrations, then web, connectors and N
workers as child processes. A child that dies is restarted with backoff; Ctrl-C or SIGTERM
stops the children gracefully (SIGTERM, then SIGKILL after a grace period) and the embedded
Redis is saved and stopped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

GRACE_SECONDS = 10


@dataclass
class Child:
    name: str
    args: list[str]
    proc: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0
    started: float = field(default=0.0)

    def start(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "core.cli", *self.args], env=env)
        self.started = time.monotonic()


def _children(workers: int, host: str, port: int) -> list[Child]:
    kids = [Child("web", ["web", "--host", host, "--port", str(port)]), Child("connectors", ["connectors"]),
            Child("scheduler", ["scheduler"])]
    kids += [Child(f"worker-{i + 1}", ["worker", "--name", f"{os.uname().nodename}-{os.getpid()}-{i + 1}"])
             for i in range(workers)]
    return kids


def run_hub(workers: int, host: str, port: int, sandbox: bool = False, seed_demo: bool = False) -> int:
    from core.db import migrate
    from core.redisconn import ensure_embedded, stop_embedded

    env = dict(os.environ)
    embedded = not env.get("REDIS_URL")
    if embedded:
        env["REDIS_URL"] = ensure_embedded()
    os.environ["REDIS_URL"] = env["REDIS_URL"]
    migrate()
    if sandbox:  # fake providers in this process; the children get a config pointing at them
        from core import sandbox as sandbox_mode

        fakes = sandbox_mode.prepare(env, host, port)
        if seed_demo:
            sandbox_mode.play_demo_later(fakes)
        _sandbox_admin(host, port)
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    kids = _children(workers, host, port)
    kids[0].start(env)  # the web first: webhooks are answered (and stored) while the workers load
    _wait_listening(host, port, kids[0])
    for kid in kids[1:]:
        kid.start(env)
    print(f"Aduan is up: console and webhooks on http://{host}:{port}, {workers} worker(s). Ctrl-C stops.",
          flush=True)
    while not stopping:
        time.sleep(0.5)
        for kid in kids:
            _watch(kid, env)
    _stop_all(kids)
    if embedded:
        stop_embedded()
    print("Aduan stopped.", flush=True)
    return 0


def _wait_listening(host: str, port: int, web: Child, timeout: float = 20) -> None:
    """Until the web process accepts connections (or exits, or `timeout`): five processes importing
    at once on a small server would make the web answer later than it needs to."""
    import socket

    target = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and web.proc is not None and web.proc.poll() is None:
        try:
            with socket.create_connection((target, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)


def _watch(kid: Child, env: dict[str, str]) -> None:
    if kid.proc is None or kid.proc.poll() is None:
        if kid.proc is None and time.monotonic() >= kid.next_start:
            kid.start(env)
        return
    code = kid.proc.returncode
    uptime = time.monotonic() - kid.started
    kid.restarts = 0 if uptime > 60 else kid.restarts + 1
    delay = min(60.0, 2.0 ** kid.restarts)
    print(f"aduan up: {kid.name} exited with code {code}; restarting in {delay:.0f}s", file=sys.stderr, flush=True)
    kid.proc, kid.next_start = None, time.monotonic() + delay


def _stop_all(kids: list[Child]) -> None:
    live = [k.proc for k in kids if k.proc is not None and k.proc.poll() is None]
    for p in live:
        p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    for p in live:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _sandbox_admin(host: str, port: int) -> None:
    """A sandbox with no console account gets one, so a newcomer can open the console at once."""
    import secrets

    from sqlmodel import select

    from core.auth import create_user
    from core.console.models import User
    from core.db import session_scope

    with session_scope() as s:
        if s.exec(select(User)).first() is not None:
            return
        password = secrets.token_urlsafe(9)
        create_user(s, "admin", password, "admin", display_name="Admin sandbox", actor="sandbox")
    print(f"Sandbox console: http://{host}:{port}/console  user: admin  password: {password}", flush=True)
