"""Who is asking, and may they: the request context every console route depends on.

Access is decided here, on the server, for every route: a route declares the roles it
serves (`require(...)`), ticket routes load the ticket through `ticket_for`, which refuses
an OPD officer another OPD's ticket (403) whatever URL they type. CSRF is checked for every
state-changing request by `csrf_protect`, attached to every console router.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from core import auth, i18n
from core.config import AppConfig
from core.console.models import User
from core.db import session_scope
from core.models import Ticket

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parents[1] / "templates"))
STAFF = ("admin", "operator", "opd")  # roles that see tickets (viewers see dashboards only)
_PHONE = re.compile(r"^\+?\d{8,}$")


class LoginRequired(Exception):
    """No (live) session: HTML requests go to the login page, HTMX ones get HX-Redirect."""


class Forbidden(Exception):
    def __init__(self, message: str = "Anda tidak berhak membuka halaman ini."):
        self.message = message


class NotFound(Exception):
    pass


class CsrfFailed(Exception):
    pass


@dataclass
class Ctx:
    request: Request
    cfg: AppConfig
    user: User | None
    lang: str
    csrf: str
    session_token: str | None = None
    flash: list[str] = field(default_factory=list)

    def t(self, msgid: str, **values: Any) -> str:
        return i18n.gettext(self.lang, msgid, **values)

    @property
    def username(self) -> str:
        return self.user.username if self.user else "anonymous"

    @property
    def role(self) -> str:
        return self.user.role if self.user else ""

    def can(self, *roles: str) -> bool:
        return self.user is not None and self.user.role in roles


def _lang(request: Request, cfg: AppConfig) -> str:
    return i18n.pick(request.cookies.get(i18n.COOKIE) or cfg.hub.language)


def config_for(request: Request, session: Any = None) -> AppConfig:
    """config.yaml with the admins' database overrides applied (see core.console.overrides)."""
    from core.console.overrides import effective_config

    if session is not None:
        return effective_config(session, request.app.state.cfg)
    with session_scope() as s:
        return effective_config(s, request.app.state.cfg)


def anonymous_ctx(request: Request) -> Ctx:
    cfg = config_for(request)
    return Ctx(request=request, cfg=cfg, user=None, lang=_lang(request, cfg),
               csrf=request.cookies.get(auth.PRE_COOKIE) or "")


def current(request: Request) -> Ctx:
    """The signed-in user's context (reloaded from the database on each request)."""
    cached = getattr(request.state, "console_ctx", None)
    if cached is not None:
        return cached
    token = request.cookies.get(auth.SESSION_COOKIE)
    data = auth.load_session(token)
    if data is None:
        raise LoginRequired()
    with session_scope() as s:
        user = s.get(User, data.user_id)
        cfg = config_for(request, s)
    if user is None or not user.active:
        auth.end_session(token)
        raise LoginRequired()
    ctx = Ctx(request=request, cfg=cfg, user=user, lang=_lang(request, cfg), csrf=data.csrf, session_token=token)
    request.state.console_ctx = ctx
    return ctx


def require(*roles: str) -> Callable[[Request], Ctx]:
    """A dependency admitting only these roles (403 for everybody else)."""

    def dep(request: Request) -> Ctx:
        ctx = current(request)
        if ctx.role not in roles:
            raise Forbidden()
        return ctx

    dep.__name__ = f"require_{'_'.join(roles)}"
    return dep


async def csrf_protect(request: Request) -> None:
    """Refuse (403) any non-GET request whose CSRF token does not match the session's."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    given = request.headers.get("x-csrf-token")
    if not given:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get("csrf_token")
            given = value if isinstance(value, str) else None
    data = auth.load_session(request.cookies.get(auth.SESSION_COOKIE))
    expected = data.csrf if data else request.cookies.get(auth.PRE_COOKIE)
    if not auth.csrf_ok(expected, given):
        raise CsrfFailed()


def user_may_see(user: User | None, ticket: Ticket) -> bool:
    """Admins and operators see every ticket, an OPD officer their OPD's, a viewer none."""
    if user is None or not user.active:
        return False
    if user.role in ("admin", "operator"):
        return True
    return user.role == "opd" and ticket.opd_code == user.opd_code


def may_see(ctx: Ctx, ticket: Ticket) -> bool:
    return user_may_see(ctx.user, ticket)


def ticket_for(ctx: Ctx, session: Any, ticket_id: int) -> Ticket:
    """The ticket, if this user may see it: 404 when absent, 403 when it is another OPD's."""
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise NotFound()
    if not may_see(ctx, ticket):
        raise Forbidden()
    return ticket


# ---------------------------------------------------------------- presentation helpers


def mask(address: str | None, ctx: Ctx) -> str:
    """Citizens' phone numbers and ids, partly hidden for OPD officers (+62812****1234)."""
    if not address:
        return ""
    if ctx.role in ("admin", "operator"):
        return address
    if _PHONE.match(address) or len(address) >= 8:
        return f"{address[:6]}****{address[-4:]}" if len(address) > 10 else f"{address[:2]}****{address[-2:]}"
    return address[:1] + "****"


def duration(ctx: Ctx, minutes: int | float) -> str:
    """'45 menit', '2 jam 5 menit': SLA time left or overdue, readable at a glance."""
    m = int(minutes)
    if m < 120:
        return ctx.t("{minutes} menit", minutes=m)
    return ctx.t("{hours} jam {minutes} menit", hours=m // 60, minutes=m % 60)


def wib(cfg: AppConfig, when: datetime | None) -> str:
    if when is None:
        return "-"
    return when.astimezone(ZoneInfo(cfg.hub.timezone)).strftime("%d-%m-%Y %H:%M WIB")


def render(ctx: Ctx, name: str, status_code: int = 200, **values: Any) -> Response:
    """A template response with the context every page needs (user, translations, CSRF token)."""
    base = {"ctx": ctx, "t": ctx.t, "user": ctx.user, "csrf": ctx.csrf, "lang": ctx.lang,
            "languages": i18n.LANGUAGES, "wib": lambda d: wib(ctx.cfg, d), "mask": lambda a: mask(a, ctx),
            "status_label": lambda v: ctx.t(i18n.STATUS.get(v, v)), "dur": lambda m: duration(ctx, m),
            "delivery_label": lambda v: ctx.t(i18n.DELIVERY.get(v or "", v or "-")),
            "unread_mentions": lambda: _unread_mentions(ctx)}
    return TEMPLATES.TemplateResponse(ctx.request, name, {**base, **values}, status_code=status_code)


def _unread_mentions(ctx: Ctx) -> int:
    """For the header badge (called by base.html only, so HTMX fragments cost nothing)."""
    from core.console.mentions import unread_count

    return unread_count(ctx.user) if ctx.role in STAFF else 0
