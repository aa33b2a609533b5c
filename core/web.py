"""The web process: provider webhooks, health checks, and (as they are added) the console and APIs."""

from __future__ import annotations

import uuid
from importlib import import_module

from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse

from core.channels import enabled_connectors
from core.config import AppConfig, get_config


def create_app(cfg: AppConfig | None = None) -> FastAPI:
    cfg = cfg or get_config()
    app = FastAPI(title="Aduan", version="0.1.0", docs_url="/api/docs", redoc_url=None)
    app.state.cfg = cfg

    @app.middleware("http")
    async def request_id(request, call_next):  # type: ignore[no-untyped-def]
        """One id per request, in every log line it causes and in the X-Request-ID response header."""
        from core.logs import bind, unbind

        rid = request.headers.get("x-request-id") or uuid.uuid4().hex[:16]
        token = bind(request_id=rid[:64])
        try:
            response = await call_next(request)
        finally:
            unbind(token)
        response.headers["X-Request-ID"] = rid[:64]
        return response
    for connector in enabled_connectors(cfg):
        router = connector.router()
        if router is not None:
            app.include_router(router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        checks = {"database": _db_ok(), "redis": _redis_ok()}
        return JSONResponse(checks, status_code=200 if all(checks.values()) else 503)

    for path in _EXTENSIONS:
        module, _, attr = path.partition(":")
        getattr(import_module(module), attr)(app, cfg)
    return app


def _db_ok() -> bool:
    from sqlalchemy import text

    from core.db import get_engine

    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return False


def _redis_ok() -> bool:
    from core.redisconn import get_redis

    try:
        return bool(get_redis().ping())
    except Exception:  # noqa: BLE001
        return False


# Features that add routes (console, status pages, Open311, sandbox) register their
# `mount(app, cfg)` function here by dotted path, one line each.
_EXTENSIONS: list[str] = [
    "core.status_page:mount",
    "core.metrics:mount",  # Prometheus metrics at /metrics
    "core.console:mount",
    "connectors.twitter_budget:mount",  # admins: the X read budget (only when the channel is enabled)
    "core.sandbox:mount",  # the citizen phone at /sandbox (only under `aduan up --sandbox`)
    "connectors.instagram_admin:mount",  # Instagram poller status (admins) and manual outbox (operators)
    "core.open311:mount",  # Open311 GeoReport v2 at /open311/v2 (when the open311 channel is enabled)
    "core.musrenbang_web:mount",  # e-Musrenbang: public list/form at /musrenbang, verification at /console/musrenbang
    "core.analytics_web:mount",  # policy dashboard, exports and monthly report at /console/analitik
]
