"""The policy dashboard in the console (viewer role and up): volumes, recurring problems and places,
SLA compliance, backlog and ageing, month-on-month, an offline map, exports and the monthly report.

Charts use Chart.js served from /console/static/vendor (no CDN; the console's CSP allows only
'self'); the numbers are also in plain tables, so the page works without JavaScript. The map
is an SVG drawn here from the kelurahan centroids in core/data/gazetteer.json: no tiles, no
internet. OPD officers only ever see their own OPD; exports carry reporters' names and contacts
only for admins and operators.
"""

from __future__ import annotations

import io
import json
import math
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from core import analytics
from core.config import AppConfig
from core.console import deps
from core.db import session_scope
from core.models import utcnow

router = APIRouter(prefix="/console/analitik", dependencies=[Depends(deps.csrf_protect)], include_in_schema=False)
VIEW = deps.require("admin", "operator", "opd", "viewer")
PERSONAL_ROLES = ("admin", "operator")
STATUSES = ("open", "new", "routed", "responded", "resolved", "closed", "rejected")


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def filters(request: Request, ctx: deps.Ctx) -> analytics.Filters:
    """From the query string; the default period is the last 30 days. An OPD officer is pinned to their OPD."""
    p = request.query_params
    today = utcnow().astimezone(ZoneInfo(ctx.cfg.hub.timezone)).date()
    f = analytics.Filters(start=_date(p.get("dari")), end=_date(p.get("sampai")), opd=p.get("opd", "")[:32],
                          channel=p.get("kanal", "")[:32], kecamatan=p.get("kecamatan", "")[:80],
                          kelurahan=p.get("kelurahan", "")[:80],
                          status=p.get("status", "") if p.get("status", "") in STATUSES else "")
    if f.start is None and f.end is None and p.get("semua") != "1":
        f.start, f.end = today - timedelta(days=29), today
    if ctx.role == "opd":
        f.opd = ctx.user.opd_code or "?"  # type: ignore[union-attr]
    return f


def _qs(f: analytics.Filters) -> str:
    from urllib.parse import urlencode

    d = {"dari": f.start.isoformat() if f.start else "", "sampai": f.end.isoformat() if f.end else "",
         "opd": f.opd, "kanal": f.channel, "kecamatan": f.kecamatan, "kelurahan": f.kelurahan, "status": f.status}
    if not f.start and not f.end:
        d["semua"] = "1"
    return urlencode({k: v for k, v in d.items() if v})


def map_svg(points: list[dict[str, Any]], width: int = 560, height: int = 420) -> dict[str, Any]:
    """Positions for the offline map: every kelurahan centroid as a faint dot, reported ones as circles
    whose area grows with the number of reports."""
    from core.location import gazetteer

    base = [(k["centroid"][0], k["centroid"][1], k["name"]) for kec in gazetteer()["kecamatan"] for k in kec["kelurahan"]]
    lats, lons = [b[0] for b in base], [b[1] for b in base]
    lo_lat, hi_lat, lo_lon, hi_lon = min(lats), max(lats), min(lons), max(lons)
    pad = 16

    def xy(lat: float, lon: float) -> tuple[float, float]:
        x = pad + (lon - lo_lon) / ((hi_lon - lo_lon) or 1) * (width - 2 * pad)
        y = pad + (hi_lat - lat) / ((hi_lat - lo_lat) or 1) * (height - 2 * pad)
        return round(x, 1), round(y, 1)

    top = max((p["count"] for p in points), default=1)
    return {"width": width, "height": height,
            "base": [(*xy(lat, lon), name) for lat, lon, name in base],
            "points": [{**p, "x": xy(p["lat"], p["lon"])[0], "y": xy(p["lat"], p["lon"])[1],
                        "r": round(3 + 14 * math.sqrt(p["count"] / top), 1)} for p in points]}


@router.get("")
def dashboard(request: Request, ctx: deps.Ctx = Depends(VIEW)) -> Response:
    f = filters(request, ctx)
    by = request.query_params.get("menurut", "channel")
    by = by if by in analytics.DIMENSIONS else "channel"
    size = request.query_params.get("periode", "day")
    size = size if size in ("day", "week", "month") else "day"
    with session_scope() as s:
        d = analytics.dashboard(s, ctx.cfg, f, by=by, size=size)
    charts = {"volume": d.volume, "opd": d.totals["opd"][:15], "channel": d.totals["channel"],
              "backlog": d.backlog}
    return deps.render(ctx, "analytics/dashboard.html", d=d, f=f, by=by, size=size, qs=_qs(f),
                       charts_json=json.dumps(charts, ensure_ascii=False).replace("</", "<\\/"),
                       map=map_svg(d.points), opds=ctx.cfg.opds, statuses=STATUSES,
                       channels=sorted({c for c, _ in d.totals["channel"]} | set(ctx.cfg.enabled_channels())),
                       personal=ctx.role in PERSONAL_ROLES)


def _export(request: Request, ctx: deps.Ctx) -> tuple[list[str], list[list[Any]], str]:
    f = filters(request, ctx)
    personal = ctx.role in PERSONAL_ROLES
    with session_scope() as s:
        rows = analytics.ticket_rows(s, ctx.cfg, f, personal=personal)
    header = list(analytics.EXPORT_COLUMNS) + (list(analytics.PERSONAL_COLUMNS) if personal else [])
    name = f"aduan-{f.start or 'awal'}-{f.end or 'akhir'}" + (f"-{f.opd}" if f.opd else "")
    return header, rows, name


@router.get("/ekspor.csv")
def export_csv(request: Request, ctx: deps.Ctx = Depends(VIEW)) -> Response:
    import csv

    header, rows, name = _export(request, ctx)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows([_cell(v) for v in r] for r in rows)
    return Response("\ufeff" + buf.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


@router.get("/ekspor.xlsx")
def export_xlsx(request: Request, ctx: deps.Ctx = Depends(VIEW)) -> Response:
    from openpyxl import Workbook

    header, rows, name = _export(request, ctx)
    wb = Workbook()
    ws = wb.active
    ws.title = "Laporan"
    ws.append(header)
    for r in rows:
        ws.append([_cell(v) for v in r])
    ws.freeze_panes = "A2"
    buf = io.BytesIO()
    wb.save(buf)
    return Response(buf.getvalue(), media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'})


def _cell(v: Any) -> Any:
    """Text that starts like a formula is written as text, in Excel and in CSV opened by a spreadsheet
    (no formula injection from citizens' words)."""
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@"):
        return "'" + v
    return v


@router.get("/laporan")
def monthly(request: Request, ctx: deps.Ctx = Depends(VIEW)) -> Response:
    from core.report import MonthError, monthly_html, parse_month

    today = utcnow().astimezone(ZoneInfo(ctx.cfg.hub.timezone)).date()
    try:
        month = parse_month(request.query_params.get("bulan") or today.strftime("%Y-%m"))
    except MonthError as exc:
        return deps.render(ctx, "error.html", status_code=400, title="Bulan tidak valid", message=str(exc))
    opd = ctx.user.opd_code if ctx.role == "opd" else (request.query_params.get("opd") or None)  # type: ignore[union-attr]
    with session_scope() as s:
        html = monthly_html(s, ctx.cfg, month, opd)
    return HTMLResponse(html)


def mount(app: FastAPI, cfg: AppConfig) -> None:
    """Register the dashboard (from core.web._EXTENSIONS); static assets are the console's."""
    app.include_router(router)
