"""The web process: provider webhooks, health checks, and (as they are added) the console and APIs."""

from __future__ import annotations

from importlib import import_module

from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse

from core.channels import enabled_connectors
from core.config import AppConfig, get_config


def create_app(cfg: AppConfig | None = None) -> FastAPI:
    cfg = cfg or get_config()
    app = FastAPI(title="Aduan", version="0.1.0", docs_url="/api/docs", redoc_url=None)
    app.state.cfg = cfg
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
]
