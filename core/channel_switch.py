"""Channels switched off (and on again) by an admin in the console, without a restart.

`config.yaml` sets a channel up (``enabled: true``, its secrets in the environment); the web and
connectors processes build its webhook routes and pollers at start-up. An admin can then switch
it off in the console: the override ``channels.<name>.enabled = false`` is stored in the `setting`
table (like every console setting it wins over the file) and switching it on again drops the
override, so the file's value applies. A channel the file leaves off cannot be switched on here:
its credentials come from the environment, read at start-up.

While a channel is off:
- its webhooks answer **503** with ``{"ok": false, "error": "channel 'x' is disabled ..."}`` and a
  ``Retry-After`` header, before anything is stored. 503 rather than 404 because it is the one
  answer every provider treats as "not now": Telegram keeps the update and delivers it again
  (for up to 24 hours), so a short pause loses no citizen; Twilio calls the number's fallback URL
  when one is set, and otherwise logs error 11200 with our body, which names the reason;
- pollers (X, Instagram, Telegram in polling mode) stop after the poll in progress and start
  again, from their stored cursors, when the channel is switched back on (`core.pollers`);
- replies already queued still go out, and delivery reports are still recorded.

Webhooks are the hot path, so the overrides are read from the database at most every `TTL`
seconds per process (one indexed query for all channels); the admin's own web process forgets
its copy at once on a change.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from sqlmodel import Session, col, select

from core.config import AppConfig, ConfigError
from core.models import Event, utcnow

log = logging.getLogger(__name__)
TTL = 2.0  # seconds a process may keep serving a channel after an admin switched it off
RETRY_AFTER = 300  # what the 503 asks the provider to wait

_lock = threading.Lock()
_cache: dict[str, Any] = {"until": 0.0, "off": {}}


def key(channel: str) -> str:
    return f"channels.{channel}.enabled"


def in_file(cfg: AppConfig, channel: str) -> bool:
    """What config.yaml says (the channel is set up in this process only if so)."""
    try:
        return bool(cfg.channel(channel).enabled)
    except KeyError:
        return False


def _read() -> dict[str, bool]:
    from core.console.models import Setting
    from core.db import session_scope

    with session_scope() as s:
        rows = s.exec(select(Setting.key, Setting.value).where(col(Setting.key).startswith("channels."))).all()
    return {k.split(".")[1]: bool(v) for k, v in rows if k.endswith(".enabled")}


def overrides(now: float | None = None) -> dict[str, bool]:
    """channel -> the console's value, re-read at most every TTL seconds (last known on a DB error)."""
    now = time.monotonic() if now is None else now
    with _lock:
        if now < _cache["until"]:
            return _cache["off"]
    try:
        fresh = _read()
    except Exception as exc:  # noqa: BLE001 - a database hiccup must not switch channels on or off
        log.warning("channel switches not readable (%s); keeping the last known", type(exc).__name__)
        fresh = _cache["off"]
    with _lock:
        _cache["off"], _cache["until"] = fresh, now + TTL
    return fresh


def forget() -> None:
    """Drop this process's copy (after a change, and in tests)."""
    with _lock:
        _cache["until"] = 0.0


def is_on(cfg: AppConfig, channel: str) -> bool:
    """Set up in config.yaml and not switched off in the console."""
    return in_file(cfg, channel) and overrides().get(channel, True)


async def is_on_async(cfg: AppConfig, channel: str) -> bool:
    """`is_on` for the event loop: the rare database read runs in a thread."""
    if time.monotonic() >= _cache["until"]:
        await asyncio.to_thread(overrides)
    return is_on(cfg, channel)


def refusal(channel: str) -> Any:
    """The webhook answer while the channel is off (see the module docstring for why 503)."""
    from fastapi.responses import JSONResponse

    return JSONResponse({"ok": False, "error": f"channel {channel!r} is disabled by an administrator; "
                                               "nothing was stored"},
                        status_code=503, headers={"Retry-After": str(RETRY_AFTER)})


async def refuse_if_off(request: Any, channel: str) -> Any | None:
    """For webhooks: the 503 response when `channel` is switched off, else None (go on)."""
    cfg = getattr(request.app.state, "cfg", None)
    if cfg is None:
        from core.config import get_config

        cfg = get_config()
    return None if await is_on_async(cfg, channel) else refusal(channel)


def check_switchable(cfg: AppConfig, channel: str) -> None:
    """ConfigError unless config.yaml sets the channel up (only such a channel runs in this hub)."""
    if channel not in cfg.channels:
        raise ConfigError([f"channels.{channel}: not configured in config.yaml"])
    if not in_file(cfg, channel):
        raise ConfigError([f"channels.{channel}.enabled: false in config.yaml; set the channel up there "
                           "(enabled: true, its secrets in the environment) and restart the hub"])


def switch(session: Session, cfg: AppConfig, channel: str, on: bool, actor: str) -> None:
    """Switch a channel off (store the override) or on (drop it); audited with before/after.
    The caller commits, then calls `forget()` so its own process applies the change at once."""
    from core.console.models import Setting

    check_switchable(cfg, channel)
    row = session.get(Setting, key(channel))
    before = bool(row.value) if row is not None else in_file(cfg, channel)
    if on and row is not None:
        session.delete(row)
    elif not on:
        row = row or Setting(key=key(channel))
        row.value, row.updated_by, row.updated_at = False, actor, utcnow()
        session.add(row)
    session.add(Event(at=utcnow(), actor=actor, action="channel.enable" if on else "channel.disable",
                      data={"key": key(channel), "before": before, "after": on}))
