"""Console endpoints for Instagram: the poller's status for admins (with what to do), and the manual
outbox operators work through when no Graph API token is configured (registered in core.web).

JSON, like the X budget view, so the console's pages (or a script) can show them:
- GET  /console/admin/instagram                  admin: status record + number of replies waiting;
- GET  /console/instagram/outbox                 operator/admin: replies to post by hand, with the post link;
- POST /console/instagram/outbox/{id}/sent       operator/admin (CSRF): "I posted it", recorded with who/when.
"""

from __future__ import annotations

from typing import Any


def mount(app: Any, cfg: Any) -> None:
    from fastapi import APIRouter, Depends
    from fastapi.responses import JSONResponse

    from connectors.instagram import manual_outbox, mark_manual_sent, read_status
    from core.console import deps

    if "instagram" not in cfg.enabled_channels():
        return
    router = APIRouter(include_in_schema=False, dependencies=[Depends(deps.csrf_protect)])

    @router.get("/console/admin/instagram")
    def status(ctx: deps.Ctx = Depends(deps.require("admin"))) -> JSONResponse:
        state = read_status() or {"state": "pending", "detail": "Belum ada putaran polling.", "action": ""}
        return JSONResponse({**state, "manual_outbox": len(manual_outbox())})

    @router.get("/console/instagram/outbox")
    def outbox(ctx: deps.Ctx = Depends(deps.require("admin", "operator"))) -> JSONResponse:
        return JSONResponse({"items": manual_outbox()})

    @router.post("/console/instagram/outbox/{message_id}/sent")
    def sent(message_id: int, ctx: deps.Ctx = Depends(deps.require("admin", "operator"))) -> JSONResponse:
        try:
            mark_manual_sent(message_id, actor=ctx.username)
        except ValueError as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=409)
        return JSONResponse({"ok": True})

    app.include_router(router)
