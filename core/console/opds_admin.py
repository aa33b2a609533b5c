"""Admin page for the OPD catalogue: add an OPD, retire one, bring it back. Admins only, audited.

An OPD is never deleted: its tickets, labels and reports keep pointing at it. Retiring it
(`opds.CODE.active = false`, see core.console.overrides) takes it out of routing (classifier and
rules send to triage instead) and out of the re-route menus; restoring puts it back. Names and
keywords are edited on the settings page like every other value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import col, func, select

from core.config import ConfigError
from core.console import deps, overrides
from core.console.models import Setting
from core.db import session_scope
from core.models import Ticket

router = APIRouter(prefix="/console/admin", dependencies=[Depends(deps.csrf_protect)], include_in_schema=False)
ADMIN = deps.require("admin")
OPEN = ("new", "routed", "responded")


@dataclass
class OpdRow:
    code: str
    name: str
    keywords: list[str]
    active: bool
    source: str  # "config.yaml", or "database" for an OPD added in the console
    changed_by: str | None = None  # who retired or restored it, when
    changed_at: datetime | None = None
    tickets: int = 0
    open_tickets: int = 0


def _rows(ctx: deps.Ctx) -> list[OpdRow]:
    with session_scope() as s:
        settings = {row.key: row for row in s.exec(select(Setting).where(col(Setting.key).startswith("opds."))).all()}
        counts = dict(s.exec(select(Ticket.opd_code, func.count()).group_by(Ticket.opd_code)).all())
        open_counts = dict(s.exec(select(Ticket.opd_code, func.count()).where(col(Ticket.status).in_(OPEN))
                                  .group_by(Ticket.opd_code)).all())
    rows = []
    for o in ctx.cfg.opds:
        switched = settings.get(f"opds.{o.code}.active")
        rows.append(OpdRow(o.code, o.name, list(o.keywords), o.active,
                           "database" if f"opds.{o.code}" in settings else "config.yaml",
                           switched.updated_by if switched else None, switched.updated_at if switched else None,
                           counts.get(o.code, 0), open_counts.get(o.code, 0)))
    return sorted(rows, key=lambda r: (not r.active, r.code))


def _page(ctx: deps.Ctx, error: str = "", status: int = 200, form: dict[str, str] | None = None) -> Response:
    return deps.render(ctx, "admin_opds.html", status_code=status, rows=_rows(ctx), error=error, form=form or {})


@router.get("/opds")
def opds(ctx: deps.Ctx = Depends(ADMIN)) -> Response:
    return _page(ctx)


@router.post("/opds")
async def add_opd(request: Request, ctx: deps.Ctx = Depends(ADMIN)) -> Response:
    """A new OPD: routable by its keywords and by re-routing as soon as it is saved."""
    f = {k: str(v) for k, v in (await request.form()).items() if k != "csrf_token"}
    try:
        with session_scope() as s:
            opd = overrides.add_opd(s, request.app.state.cfg, f.get("code", ""), f.get("name", ""),
                                    f.get("keywords", ""), ctx.username)
    except ConfigError as exc:
        return _page(ctx, "; ".join(exc.problems), 400, form=f)
    return RedirectResponse(f"/console/admin/opds#opd-{opd.code}", status_code=303)


@router.post("/opds/{code}/active")
async def set_active(request: Request, code: str, ctx: deps.Ctx = Depends(ADMIN)) -> Response:
    """Retire (active=0) or restore (active=1) an OPD; its tickets stay where they are."""
    active = str((await request.form()).get("active") or "") == "1"
    try:
        with session_scope() as s:
            overrides.set_opd_active(s, request.app.state.cfg, code, active, ctx.username)
    except ConfigError as exc:
        return _page(ctx, "; ".join(exc.problems), 400)
    return RedirectResponse(f"/console/admin/opds#opd-{code}", status_code=303)
