"""The connectors process: runs every enabled polling connector's `run()` until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

from core.channels import enabled_connectors
from core.config import AppConfig

log = logging.getLogger(__name__)


def run_pollers(cfg: AppConfig) -> None:
    asyncio.run(_main(cfg))


async def _main(cfg: AppConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    pollers = [c for c in enabled_connectors(cfg) if c.polls]
    if not pollers:
        log.info("no polling connector enabled; idle")
    tasks = [asyncio.create_task(_guard(c, stop)) for c in pollers]
    await stop.wait()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _guard(connector, stop: asyncio.Event) -> None:  # type: ignore[no-untyped-def]
    """Restart a crashed poller with backoff instead of taking the others down."""
    delay = 1.0
    while not stop.is_set():
        try:
            await connector.run(stop)
            delay = 1.0
        except Exception:  # noqa: BLE001 - logged, then retried
            log.exception("%s poller crashed; restarting in %.0fs", connector.name, delay)
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except asyncio.TimeoutError:
                pass
            delay = min(delay * 2, 300)
