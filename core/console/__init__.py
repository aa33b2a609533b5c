"""The web console for media-center operators, OPD officers and admins (FastAPI + Jinja2 + HTMX).

`mount(app, cfg)` adds the routes under /console, the local static files (htmx, CSS) under
/console/static, security headers and the error pages. Nothing is loaded from a CDN: the
console works on a closed government network.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from core.config import AppConfig
from core.console import deps

STATIC = Path(__file__).resolve().parents[1] / "static"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'self'; object-src 'none'")


def _security_headers(app: FastAPI, https: bool) -> None:
    @app.middleware("http")
    async def headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response = await call_next(request)
        if request.url.path.startswith("/console"):
            response.headers["Content-Security-Policy"] = CSP
            response.headers["X-Frame-Options"] = "DENY"
            response.headers["X-Content-Type-Options"] = "nosniff"
            response.headers["Referrer-Policy"] = "same-origin"
            if not request.url.path.startswith("/console/static"):
                response.headers.setdefault("Cache-Control", "no-store")  # pages carry personal data
            if https:
                response.headers["Strict-Transport-Security"] = "max-age=31536000"
        return response


def _error_handlers(app: FastAPI) -> None:
    def page(request: Request, status: int, title: str, message: str) -> Response:
        try:
            ctx = deps.current(request)
        except deps.LoginRequired:
            ctx = deps.anonymous_ctx(request)
        return deps.render(ctx, "error.html", status_code=status, title=title, message=message)

    @app.exception_handler(deps.LoginRequired)
    async def login_required(request: Request, exc: deps.LoginRequired) -> Response:
        target = "/console/login?next=" + quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": target})
        if request.method != "GET":
            return Response("login required", status_code=401)
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(deps.Forbidden)
    async def forbidden(request: Request, exc: deps.Forbidden) -> Response:
        return page(request, 403, "Akses ditolak", exc.message)

    @app.exception_handler(deps.NotFound)
    async def not_found(request: Request, exc: deps.NotFound) -> Response:
        return page(request, 404, "Tidak ditemukan", "Tidak ditemukan")

    @app.exception_handler(deps.CsrfFailed)
    async def csrf_failed(request: Request, exc: deps.CsrfFailed) -> Response:
        return page(request, 403, "Akses ditolak",
                    "Permintaan ditolak: token keamanan (CSRF) tidak ada atau salah. Muat ulang halaman.")


def mount(app: FastAPI, cfg: AppConfig) -> None:
    """Register the console on the hub's web app (called from core.web._EXTENSIONS)."""
    from core.console import admin, channels_admin, inbox, login, mentions, opds_admin, ticket

    app.state.cfg = cfg
    # Other features add their console pages to the menu: app.state.console_nav.append((path, label, roles)).
    if not hasattr(app.state, "console_nav"):
        app.state.console_nav = []
    app.state.https = cfg.hub.public_url.startswith("https://")
    app.mount("/console/static", StaticFiles(directory=str(STATIC)), name="console-static")
    for module in (login, inbox, ticket, admin, channels_admin, opds_admin, mentions):
        app.include_router(module.router)
    _error_handlers(app)
    _security_headers(app, app.state.https)
