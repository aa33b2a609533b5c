"""Admin page for the channels: switched on or off (and by whom: config.yaml or the console), whether
each credential is set (never its value), the webhook URL to paste at the provider, the X read budget
left this month, and a "test connection" button (Connector.check).

Switching a channel off or on is `core.channel_switch.switch`: stored as a console override, audited,
and seen by every process within seconds, without a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import SecretStr

from core import channel_switch
from core.config import ConfigError
from core.console import deps
from core.console.actions import audit
from core.console.models import Setting
from core.db import session_scope

router = APIRouter(prefix="/console/admin", dependencies=[Depends(deps.csrf_protect)], include_in_schema=False)
ADMIN = deps.require("admin")


@dataclass
class ChannelRow:
    name: str
    in_file: bool  # config.yaml sets it up
    on: bool  # ... and the console has not switched it off
    credentials: dict[str, bool]  # secret field -> set?
    webhook: str | None
    source: str = "config.yaml"  # or "database" when an admin switched it off
    updated_by: str | None = None
    updated_at: datetime | None = None
    budget: dict[str, Any] | None = None  # X: the month's reads


def _webhook(ctx: deps.Ctx, name: str) -> str | None:
    from core.channels import get_connector

    try:
        router_ = get_connector(ctx.cfg, name).router()
    except Exception:  # noqa: BLE001 - a broken connector still gets its row
        return None
    paths = [getattr(r, "path", "") for r in getattr(router_, "routes", [])]
    hook = next((p for p in paths if p.startswith("/webhooks")), "")
    return ctx.cfg.hub.public_url.rstrip("/") + hook if hook else None


def _budget(settings: Any) -> dict[str, Any] | None:
    from connectors.twitter_budget import budget_view

    try:
        return budget_view(settings)
    except Exception:  # noqa: BLE001 - the page must open even if the cursor table is unreadable
        return None


def _rows(ctx: deps.Ctx) -> list[ChannelRow]:
    channel_switch.forget()  # the admin sees the database's state, not this process's few-seconds copy
    with session_scope() as s:
        switched = {k: s.get(Setting, channel_switch.key(k)) for k in ctx.cfg.channels}
    rows = []
    for name in sorted(ctx.cfg.channels):
        try:
            settings = ctx.cfg.channel(name)
        except KeyError:
            continue
        fields = type(settings).model_fields
        creds = {k: bool(v.get_secret_value()) if isinstance(v, SecretStr) else False
                 for k, v in settings if "SecretStr" in str(fields[k].annotation)}
        row = ChannelRow(name, settings.enabled, channel_switch.is_on(ctx.cfg, name), creds,
                         _webhook(ctx, name) if settings.enabled else None)
        override = switched.get(name)
        if override is not None:
            row.source, row.updated_by, row.updated_at = "database", override.updated_by, override.updated_at
        if name == "twitter" and settings.enabled:
            row.budget = _budget(settings)
        rows.append(row)
    return rows


def _page(ctx: deps.Ctx, result: tuple[str, bool, str] | None = None, status: int = 200, error: str = "") -> Response:
    return deps.render(ctx, "admin_channels.html", status_code=status, rows=_rows(ctx), result=result, error=error)


@router.get("/channels")
def channels(ctx: deps.Ctx = Depends(ADMIN)) -> Response:
    return _page(ctx)


@router.post("/channels/{name}/switch")
async def switch_channel(request: Request, name: str, ctx: deps.Ctx = Depends(ADMIN)) -> Response:
    """Switch a channel off (its webhooks answer 503, its poller pauses) or on again."""
    on = str((await request.form()).get("on") or "") == "1"
    try:
        with session_scope() as s:
            channel_switch.switch(s, ctx.cfg, name, on, ctx.username)
    except ConfigError as exc:
        return _page(ctx, status=400, error="; ".join(exc.problems))
    channel_switch.forget()  # committed: this process applies it now, the others within TTL seconds
    return RedirectResponse(f"/console/admin/channels#ch-{name}", status_code=303)


@router.post("/channels/{name}/test")
def test_connection(name: str, ctx: deps.Ctx = Depends(ADMIN)) -> Response:
    """Call the provider once (e.g. Telegram getMe) with the configured credentials; show the answer."""
    from core.channels import get_connector

    if name not in ctx.cfg.enabled_channels():
        return _page(ctx, (name, False, "kanal tidak aktif di konfigurasi"), 400)
    try:
        answer, ok = get_connector(ctx.cfg, name).check(), True
    except Exception as exc:  # noqa: BLE001 - any provider failure is the answer to show
        answer, ok = f"{type(exc).__name__}: {exc}"[:300], False
    with session_scope() as s:
        audit(s, ctx.username, "channel.test", None, channel=name, ok=ok, answer=answer)
    return _page(ctx, (name, ok, answer), 200 if ok else 502)
