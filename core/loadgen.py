"""`aduan bench burst`: a flood-day burst of webhook messages against a real hub on loopback.

Starts a fake Telegram Bot API and `aduan up` (web, workers, scheduler) on a scratch data dir,
posts N signed webhook updates spread over S seconds from a pool of client threads, then waits
until every message is processed and every acknowledgement delivered. Prints what was accepted,
how fast, how long processing took to catch up, and whether anything was lost or duplicated.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import yaml

TOKEN, SECRET = "1000:BURST-token", "burst-secret"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_burst(messages: int, seconds: float, workers: int, progress=None) -> dict:  # type: ignore[no-untyped-def]
    """Run the burst; returns the figures."""
    from connectors.fakes import serve
    from connectors.fakes.telegram import TelegramState, create_app
    from core.bench import texts

    tmp = Path(tempfile.mkdtemp(prefix="aduan-burst-"))
    state = TelegramState(token=TOKEN)
    provider = serve(create_app(state))
    raw = yaml.safe_load(Path(os.environ.get("ADUAN_CONFIG", "config.yaml")).read_text(encoding="utf-8"))
    for block in (raw.get("channels") or {}).values():
        block["enabled"] = False
    raw["channels"]["telegram"] = {"enabled": True, "mode": "webhook", "api_base": provider.url,
                                   "token": "${TELEGRAM_BOT_TOKEN}", "secret_token": "${TELEGRAM_SECRET_TOKEN}",
                                   "bot_rate_per_second": 1000}
    (tmp / "config.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    env = {**os.environ, "ADUAN_CONFIG": str(tmp / "config.yaml"), "ADUAN_DATA_DIR": str(tmp / "data"),
           "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_SECRET_TOKEN": SECRET, "ADUAN_LOG_LEVEL": "WARNING"}
    port = _free_port()
    hub = subprocess.Popen([sys.executable, "-m", "core.cli", "up", "--workers", str(workers), "--port", str(port)],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, hub)
        pool = texts()
        updates = [state.citizen_update(5_000_000 + i, f"{pool[i % len(pool)]} (laporan {i})") for i in range(messages)]
        codes: Counter[int] = Counter()
        lock = threading.Lock()
        t0 = time.perf_counter()

        def post(client: httpx.Client, i: int) -> None:
            target = t0 + i * seconds / messages
            if (delay := target - time.perf_counter()) > 0:
                time.sleep(delay)
            code = client.post(f"{base}/webhooks/telegram", json=updates[i],
                               headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}).status_code
            with lock:
                codes[code] += 1
                if progress and sum(codes.values()) % 250 == 0:
                    progress(sum(codes.values()), messages * 2)

        # One pooled client, as Telegram itself keeps its webhook connections open (max_connections
        # 40 by default); a fresh client per request costs the generator ~25 ms of CPU in TLS setup.
        with httpx.Client(timeout=30, limits=httpx.Limits(max_connections=32)) as client, ThreadPoolExecutor(32) as ex:
            list(ex.map(lambda i: post(client, i), range(messages)))
        sent_s = time.perf_counter() - t0
        from core.db import database_url

        os.environ["ADUAN_DATA_DIR"] = str(tmp / "data")
        db = database_url()
        processed_s, done_s = _wait_processed(db, messages, t0, progress)
    finally:
        hub.terminate()
        hub.wait(timeout=60)
        provider.stop()
    per_chat = Counter(m["chat"]["id"] for m in state.sent)
    return {"messages": messages, "seconds_target": seconds, "workers": workers, "http_status": dict(codes),
            "accepted_per_second": messages / sent_s, "send_seconds": round(sent_s, 1),
            "all_processed_after_seconds": round(processed_s, 1),
            "all_processed_and_acknowledged_after_seconds": round(done_s, 1), "acknowledgements": len(state.sent),
            "chats_acknowledged_twice": sum(1 for n in per_chat.values() if n > 1)}


def _wait_ready(base: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the hub did not become ready")


def _wait_processed(db: str, messages: int, t0: float, progress=None,  # type: ignore[no-untyped-def]
                    stall: float = 120) -> tuple[float, float]:
    """(seconds until every message was processed, until every acknowledgement was also delivered)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db)
    last, changed, processed_s = -1, time.monotonic(), None
    while True:
        with engine.connect() as c:
            done = c.execute(text("SELECT count(*) FROM message WHERE direction='in' AND state='processed'")).scalar_one()
            if done >= messages:  # and every acknowledgement handed to the provider
                processed_s = processed_s or time.perf_counter() - t0
                done -= c.execute(text("SELECT count(*) FROM message WHERE direction='out' "
                                       "AND delivery_state IN ('pending', 'sending', 'retry')")).scalar_one()
        if progress:
            progress(messages + done, messages * 2)
        if done >= messages:
            return processed_s or 0.0, time.perf_counter() - t0
        if done != last:
            last, changed = done, time.monotonic()
        elif time.monotonic() - changed > stall:
            raise RuntimeError(f"{messages - done} messages unprocessed after {stall:.0f} s without progress")
        time.sleep(0.5)
