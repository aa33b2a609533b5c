"""Admin pages: users and roles, the audit log, canned responses. Admins only, every change audited."""

from __future__ import annotations

import math

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import col, func, select

from core import auth
from core.config import ConfigError
from core.console import deps, overrides
from core.console.actions import audit
from core.console.models import ROLES, CannedResponse, User
from core.db import session_scope
from core.models import Event, utcnow

router = APIRouter(prefix="/console/admin", dependencies=[Depends(deps.csrf_protect)], include_in_schema=False)
ADMIN = deps.require("admin")
AUDIT_PAGE = 100


def _users_page(ctx: deps.Ctx, error: str = "", status: int = 200, notice: str = "") -> Response:
    with session_scope() as s:
        users = list(s.exec(select(User).order_by(col(User.username))).all())
    return deps.render(ctx, "admin_users.html", status_code=status, users=users, roles=ROLES, opds=ctx.cfg.opds,
                       error=error, notice=notice, channels=ctx.cfg.enabled_channels())


@router.get("/users")
def users(request: Request, ctx: deps.Ctx = Depends(ADMIN)) -> Response:
    return _users_page(ctx, notice=ctx.t("Tersimpan.") if request.query_params.get("ok") else "")


@router.post("/users")
async def create_user(request: Request, ctx: deps.Ctx = Depends(ADMIN)) -> Response:
    f = await request.form()
    try:
        with session_scope() as s:
            auth.create_user(s, str(f.get("username") or ""), str(f.get("password") or ""), str(f.get("role") or ""),
                             str(f.get("opd_code") or "") or None, display_name=str(f.get("display_name") or ""),
                             actor=ctx.username, known_opds=[o.code for o in ctx.cfg.opds])
    except auth.AuthError as exc:
        return _users_page(ctx, error=str(exc), status=400)
    return RedirectResponse("/console/admin/users?ok=1", status_code=303)


@router.post("/users/{user_id}")
async def update_user(request: Request, user_id: int, ctx: deps.Ctx = Depends(ADMIN)) -> Response:
    """One form per user row: 'active', 'password', 'role' or 'notify', chosen by the button pressed."""
    f = await request.form()
    op = str(f.get("op") or "")
    try:
        with session_scope() as s:
            user = s.get(User, user_id)
            if user is None:
                raise deps.NotFound()
            if op == "disable":
                if user.id == ctx.user.id:  # type: ignore[union-attr]
                    raise auth.AuthError("you cannot disable your own account")
                auth.set_active(s, user, False, ctx.username)
            elif op == "enable":
                auth.set_active(s, user, True, ctx.username)
            elif op == "password":
                auth.set_password(s, user, str(f.get("password") or ""), ctx.username)
            elif op == "notify":
                auth.set_notify(s, user, str(f.get("channel") or ""), str(f.get("address") or ""), ctx.username,
                                known_channels=ctx.cfg.enabled_channels())
            elif op == "role":
                auth.set_role(s, user, str(f.get("role") or ""), str(f.get("opd_code") or "") or None, ctx.username,
                              known_opds=[o.code for o in ctx.cfg.opds])
            else:
                raise auth.AuthError("unknown operation")
    except auth.AuthError as exc:
        return _users_page(ctx, error=str(exc), status=400)
    return RedirectResponse("/console/admin/users?ok=1", status_code=303)


@router.get("/audit")
def audit_log(request: Request, ctx: deps.Ctx = Depends(ADMIN)) -> Response:
    """The append-only log, newest first, filterable by actor and action."""
    p = request.query_params
    actor, action = p.get("actor", "").strip()[:64], p.get("action", "").strip()[:48]
    try:
        page = max(1, int(p.get("page", "1")))
    except ValueError:
        page = 1
    conds = []
    if actor:
        conds.append(Event.actor == actor)
    if action:
        conds.append(col(Event.action).startswith(action))
    with session_scope() as s:
        total = s.exec(select(func.count()).select_from(Event).where(*conds)).one()
        events = list(s.exec(select(Event).where(*conds).order_by(col(Event.id).desc())
                             .offset((page - 1) * AUDIT_PAGE).limit(AUDIT_PAGE)).all())
    return deps.render(ctx, "admin_audit.html", events=events, actor=actor, action=action, page=page,
                       pages=max(1, math.ceil(total / AUDIT_PAGE)), total=total)


def _canned_page(ctx: deps.Ctx, error: str = "", status: int = 200) -> Response:
    with session_scope() as s:
        items = list(s.exec(select(CannedResponse).order_by(col(CannedResponse.opd_code), col(CannedResponse.title))).all())
    return deps.render(ctx, "admin_canned.html", status_code=status, items=items, opds=ctx.cfg.opds, error=error)


@router.get("/canned")
def canned(ctx: deps.Ctx = Depends(ADMIN)) -> Response:
    return _canned_page(ctx)


@router.post("/canned")
async def canned_save(request: Request, ctx: deps.Ctx = Depends(ADMIN)) -> Response:
    """Create, edit (id given) or delete (op=delete) a canned response."""
    f = await request.form()
    op = str(f.get("op") or "save")
    title, text = str(f.get("title") or "").strip(), str(f.get("text") or "").strip()
    opd = str(f.get("opd_code") or "") or None
    if opd and ctx.cfg.opd(opd) is None:
        return _canned_page(ctx, f"OPD {opd!r} tidak dikenal.", 400)
    with session_scope() as s:
        item = s.get(CannedResponse, int(str(f.get("id")))) if str(f.get("id") or "").isdigit() else None
        before = item.model_dump(include={"title", "text", "opd_code"}) if item else None
        if op == "delete":
            if item is None:
                raise deps.NotFound()
            s.delete(item)
            audit(s, ctx.username, "canned.delete", None, before, None)
        else:
            if not title or not text or len(title) > 120:
                return _canned_page(ctx, "Judul (maks. 120 karakter) dan teks wajib diisi.", 400)
            item = item or CannedResponse(title=title, text=text)
            item.title, item.text, item.opd_code = title, text, opd
            item.updated_by, item.updated_at = ctx.username, utcnow()
            s.add(item)
            audit(s, ctx.username, "canned.save", None, before, {"title": title, "text": text, "opd_code": opd})
    return RedirectResponse("/console/admin/canned", status_code=303)


def _settings_page(ctx: deps.Ctx, error: str = "", status: int = 200) -> Response:
    with session_scope() as s:
        items = overrides.listing(s, ctx.request.app.state.cfg)
    return deps.render(ctx, "admin_settings.html", status_code=status, items=items, error=error)


@router.get("/settings")
def settings(ctx: deps.Ctx = Depends(ADMIN)) -> Response:
    """SLA budgets, templates and the OPD catalogue, each with where its value comes from."""
    return _settings_page(ctx)


@router.post("/settings")
async def settings_save(request: Request, ctx: deps.Ctx = Depends(ADMIN)) -> Response:
    f = await request.form()
    key = str(f.get("key") or "")
    try:
        with session_scope() as s:
            if f.get("op") == "reset":
                overrides.reset(s, key, ctx.username)
            else:
                overrides.save(s, request.app.state.cfg, key, str(f.get("value") or ""), ctx.username)
    except ConfigError as exc:
        return _settings_page(ctx, "; ".join(exc.problems), 400)
    return RedirectResponse(f"/console/admin/settings#{key}", status_code=303)
