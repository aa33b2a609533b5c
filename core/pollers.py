"""The connectors process: runs every enabled polling connector's `run()` until SIGTERM/SIGINT.

A poller whose channel an admin switches off in the console (core.channel_switch) is stopped
after the poll in progress and started again when the channel is switched back on; it then
resumes from its stored cursors, as after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from core.channels import enabled_connectors
from core.config import AppConfig

log = logging.getLogger(__name__)
CHECK_SECONDS = 2.0  # how often a poller looks at its channel's switch


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
    tasks = [asyncio.create_task(_guard(cfg, c, stop)) for c in pollers]
    await stop.wait()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        pass


async def _guard(cfg: AppConfig, connector, stop: asyncio.Event) -> None:  # type: ignore[no-untyped-def]
    """Run the poller while its channel is on; restart a crashed poller with backoff instead of taking
    the others down."""
    from core.channel_switch import is_on_async

    delay, paused = 1.0, False
    while not stop.is_set():
        if not await is_on_async(cfg, connector.name):
            if not paused:
                log.info("%s switched off in the console; polling paused", connector.name)
            paused = True
            await _sleep(stop, CHECK_SECONDS)
            continue
        if paused:
            log.info("%s switched on again; polling resumes", connector.name)
        paused = False
        try:
            await _run_while_on(cfg, connector, stop)
            delay = 1.0
        except Exception:  # noqa: BLE001 - logged, then retried
            log.exception("%s poller crashed; restarting in %.0fs", connector.name, delay)
            await _sleep(stop, delay)
            delay = min(delay * 2, 300)


async def _run_while_on(cfg: AppConfig, connector, stop: asyncio.Event) -> None:  # type: ignore[no-untyped-def]
    """`connector.run` with a stop event that is also set when the channel is switched off."""
    from core.channel_switch import is_on_async

    local = asyncio.Event()

    async def watch() -> None:
        while not stop.is_set() and await is_on_async(cfg, connector.name):
            await _sleep(stop, CHECK_SECONDS)
        local.set()

    watcher = asyncio.create_task(watch())
    try:
        await connector.run(local)
    finally:
        watcher.cancel()
