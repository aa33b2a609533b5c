"""The monthly report per OPD: one printable HTML page (the browser prints it to PDF), the same from the
console (/console/analitik/laporan?bulan=2026-11) and the CLI (`aduan report monthly --month 2026-11`).

Per OPD: complaints received in the month and their status now, SLA compliance and response times,
the backlog still open at the end of the month, the places and problems reported most, and the
change from the previous month. No personal data: complaint texts are redacted.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Callable

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlmodel import Session

from core import analytics
from core.config import AppConfig
from core.models import utcnow

TEMPLATES = Path(__file__).resolve().parent / "templates"
CSS = Path(__file__).resolve().parent / "static" / "report.css"
_ENV = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(default=True))
MONTHS = ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober",
          "November", "Desember")


class MonthError(ValueError):
    pass


def parse_month(value: str) -> date:
    if not re.fullmatch(r"\d{4}-\d{2}", value or ""):
        raise MonthError(f"bulan {value!r}: gunakan bentuk YYYY-MM, misalnya 2026-11")
    year, month = int(value[:4]), int(value[5:])
    if not 1 <= month <= 12 or not 2000 <= year <= 2100:
        raise MonthError(f"bulan {value!r}: di luar rentang")
    return date(year, month, 1)


def month_filters(month: date, opd: str | None = None) -> analytics.Filters:
    last = (month + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    return analytics.Filters(start=month, end=last, opd=opd or "")


def sections(session: Session, cfg: AppConfig, month: date, opd: str | None = None) -> list[dict[str, Any]]:
    """One section per OPD that had complaints in the month (or just `opd`)."""
    f = month_filters(month, opd)
    rows = analytics.tickets(session, cfg, f)
    codes = [opd] if opd else sorted({t.opd_code for t in rows if t.opd_code})
    mom = {r["opd"]: r for r in analytics.month_on_month(session, cfg, month)}
    sla = {r["opd"]: r for r in analytics.sla_rows(session, cfg, f)}
    out = []
    for code in codes:
        mine = [t for t in rows if t.opd_code == code]
        o = cfg.opd(code)
        status = analytics.totals(mine, "channel")
        out.append({"code": code, "name": o.name if o else code, "total": len(mine),
                    "reporters": sum(t.reporters for t in mine),
                    "by_status": _by_status(mine), "by_channel": status,
                    "by_kecamatan": analytics.totals(mine, "kecamatan")[:10],
                    "sla": sla.get(code), "backlog": analytics.backlog(mine),
                    "places": analytics.top_places(mine, 10), "clusters": analytics.top_clusters(mine, 10),
                    "terms": analytics.frequent_terms(mine, 12),
                    "mom": mom.get(code, {"this": len(mine), "previous": 0, "change": len(mine), "change_pct": None})})
    return out


def _by_status(rows: list[Any]) -> list[tuple[str, int]]:
    from core.selfservice import STATUS_LABEL

    order = ("new", "routed", "responded", "resolved", "closed", "rejected")
    counts = {s: sum(t.status == s for t in rows) for s in order}
    return [(STATUS_LABEL.get(s, s), n) for s, n in counts.items() if n]


def monthly_html(session: Session, cfg: AppConfig, month: date, opd: str | None = None,
                 standalone: bool = False) -> str:
    """The report page; `standalone` inlines the stylesheet (a file opened from disk, no web server)."""
    from zoneinfo import ZoneInfo

    made = utcnow().astimezone(ZoneInfo(cfg.hub.timezone)).strftime("%d-%m-%Y %H:%M WIB")
    return _ENV.get_template("analytics/monthly.html").render(
        cfg=cfg, month_label=f"{MONTHS[month.month - 1]} {month.year}", sections=sections(session, cfg, month, opd),
        made=made, css=CSS.read_text(encoding="utf-8") if standalone else None, opd=opd)


def cli_monthly(cfg: AppConfig, month: str, opd: str | None, out: Path | None,
                fail: Callable[[str], None]) -> int:
    from core.db import session_scope

    try:
        first = parse_month(month)
    except MonthError as exc:
        fail(f"--month: {exc}")
        return 2
    if opd and cfg.opd(opd) is None:
        fail(f"--opd {opd!r}: unknown OPD code; known: {', '.join(o.code for o in cfg.opds)}")
        return 2
    with session_scope() as s:
        html = monthly_html(s, cfg, first, opd, standalone=True)
    if out is None:
        print(html)
    else:
        out.write_text(html, encoding="utf-8")
        print(f"laporan bulanan {month} ditulis ke {out}")
    return 0
