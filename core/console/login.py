"""Signing in and out, and the language switch."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from core import auth, i18n
from core.console import deps
from core.db import session_scope

router = APIRouter(prefix="/console", dependencies=[Depends(deps.csrf_protect)], include_in_schema=False)


def _safe_next(value: str | None) -> str:
    """Only local console paths: never an open redirect."""
    if value and value.startswith("/console") and not value.startswith("//") and "\\" not in value:
        return value
    return "/console"


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "?"


def _login_page(request: Request, error: str = "", status: int = 200, username: str = "") -> Response:
    ctx = deps.anonymous_ctx(request)
    fresh = not ctx.csrf
    if fresh:
        ctx.csrf = secrets.token_urlsafe(32)
    resp = deps.render(ctx, "login.html", status_code=status, error=error, username=username,
                       next=_safe_next(request.query_params.get("next")))
    if fresh:
        resp.set_cookie(auth.PRE_COOKIE, ctx.csrf, httponly=True, samesite="strict", path="/console",
                        secure=request.app.state.https)
    return resp


@router.get("/login")
def login_form(request: Request) -> Response:
    return _login_page(request)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    username = str(form.get("username") or "").strip().lower()[:64]
    password = str(form.get("password") or "")
    ip = _client_ip(request)
    ctx = deps.anonymous_ctx(request)
    wait = auth.throttled(username, ip)
    if wait:
        return _login_page(request, ctx.t("Terlalu banyak percobaan gagal. Coba lagi dalam {minutes} menit.",
                                          minutes=max(1, (wait + 59) // 60)), status=429, username=username)
    with session_scope() as s:
        user = auth.authenticate(s, username, password, ip)
        user_id = user.id if user else None
    if user_id is None:
        return _login_page(request, ctx.t("Nama pengguna atau kata sandi salah."), status=401, username=username)
    data = auth.start_session(user_id)
    resp = RedirectResponse(_safe_next(str(form.get("next") or "")), status_code=303)
    resp.set_cookie(auth.SESSION_COOKIE, data.token, httponly=True, samesite="lax", path="/",
                    secure=request.app.state.https, max_age=auth.ABSOLUTE_SECONDS)
    resp.delete_cookie(auth.PRE_COOKIE, path="/console")
    return resp


@router.post("/logout")
def logout(request: Request) -> Response:
    auth.end_session(request.cookies.get(auth.SESSION_COOKIE))
    resp = RedirectResponse("/console/login", status_code=303)
    resp.delete_cookie(auth.SESSION_COOKIE, path="/")
    return resp


@router.post("/lang")
async def set_language(request: Request) -> Response:
    form = await request.form()
    lang = i18n.pick(str(form.get("lang") or ""))
    back = _safe_next(request.headers.get("referer", "").split(str(request.base_url).rstrip("/"), 1)[-1])
    resp = RedirectResponse(back, status_code=303)
    resp.set_cookie(i18n.COOKIE, lang, samesite="lax", path="/", max_age=365 * 86400,
                    secure=request.app.state.https)
    return resp
