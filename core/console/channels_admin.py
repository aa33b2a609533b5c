"""Admin page for the channels: enabled or not, whether each credential is set (never its value),
the webhook URL to paste at the provider, and a "test connection" button (Connector.check)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import SecretStr

from core.console import deps
from core.console.actions import audit
from core.db import session_scope

router = APIRouter(prefix="/console/admin", dependencies=[Depends(deps.csrf_protect)], include_in_schema=False)
ADMIN = deps.require("admin")


@dataclass
class ChannelRow:
    name: str
    enabled: bool
    credentials: dict[str, bool]  # secret field -> set?
    webhook: str | None


def _rows(ctx: deps.Ctx) -> list[ChannelRow]:
    from core.channels import get_connector

    rows = []
    base = ctx.cfg.hub.public_url.rstrip("/")
    for name in sorted(ctx.cfg.channels):
        try:
            settings = ctx.cfg.channel(name)
        except KeyError:
            continue
        creds = {k: bool(v.get_secret_value()) if isinstance(v, SecretStr) else False
                 for k, v in settings if "SecretStr" in str(type(settings).model_fields[k].annotation)}
        webhook = None
        if settings.enabled:
            try:
                router_ = get_connector(ctx.cfg, name).router()
                paths = [getattr(r, "path", "") for r in getattr(router_, "routes", [])]
                webhook = base + next((p for p in paths if p.startswith("/webhooks")), "") if paths else None
            except Exception:  # noqa: BLE001 - a broken connector still gets its row
                webhook = None
        rows.append(ChannelRow(name, settings.enabled, creds, webhook))
    return rows


def _page(ctx: deps.Ctx, result: tuple[str, bool, str] | None = None, status: int = 200) -> Response:
    return deps.render(ctx, "admin_channels.html", status_code=status, rows=_rows(ctx), result=result)


@router.get("/channels")
def channels(ctx: deps.Ctx = Depends(ADMIN)) -> Response:
    return _page(ctx)


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
