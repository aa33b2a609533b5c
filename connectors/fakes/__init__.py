"""Local fake provider servers speaking each provider's HTTP API, for tests and the sandbox.

Each fake is a FastAPI app with an in-memory state object; `serve(app)` runs it with uvicorn
on 127.0.0.1 in a background thread and returns its base URL. The real client libraries are
pointed at these URLs, so the code under test is the code that runs in production.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import uvicorn


@dataclass
class Running:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


def serve(app, host: str = "127.0.0.1", port: int = 0) -> Running:  # type: ignore[no-untyped-def]
    """Serve `app` on host:port (0: a free port) in a daemon thread; returns when it accepts connections."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("fake server did not start")
        time.sleep(0.01)
    return Running(url=f"http://{host}:{port}", server=server, thread=thread)
