"""The public status page `/status/{ticket}`: progress of a report without any personal data.

Linked from public replies on X and Instagram, so a citizen can follow a case that cannot be
discussed in public. Shows the number, OPD, status, the steps with their WIB times, and the
latest public response; never the reporter, the text of the complaint, or contact details.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse
from jinja2 import Environment, select_autoescape
from sqlmodel import Session, select

from core.config import AppConfig
from core.db import get_engine
from core.models import Ticket
from core.selfservice import STATUS_LABEL, latest_public_response

_ENV = Environment(autoescape=select_autoescape(default=True))
_PAGE = _ENV.from_string("""<!doctype html>
<html lang="id"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Status laporan {{ number }}</title>
<style>body{font-family:system-ui,sans-serif;max-width:38rem;margin:2rem auto;padding:0 1rem;color:#1b2631}
h1{font-size:1.4rem}ol{padding-left:1.2rem}li{margin:.4rem 0}.done{color:#1e7b34}.muted{color:#5d6d7e}
.badge{display:inline-block;padding:.2rem .6rem;border-radius:1rem;background:#e8f1fb}</style></head>
<body><main><h1>Laporan {{ number }}</h1>
<p><span class="badge">{{ status }}</span></p>
<p>Ditangani oleh: <strong>{{ opd }}</strong></p>
<ol>{% for label, when in steps %}<li class="{{ 'done' if when else 'muted' }}">{{ label }}{% if when %} — {{ when }}{% endif %}</li>{% endfor %}</ol>
{% if latest %}<h2>Tanggapan terakhir</h2><p>{{ latest }}</p>{% endif %}
<p class="muted">Halaman ini tidak menampilkan data pribadi pelapor.</p></main></body></html>""")


def public_status(session: Session, cfg: AppConfig, number: str) -> dict | None:
    t = session.exec(select(Ticket).where(Ticket.number == number.upper())).first()
    if t is None or t.status == "spam":
        return None
    tz = ZoneInfo(cfg.hub.timezone)
    fmt = lambda d: d.astimezone(tz).strftime("%d-%m-%Y %H:%M WIB") if d else None  # noqa: E731
    opd = cfg.opd(t.opd_code)
    steps = [("Laporan diterima", fmt(t.created_at)), ("Diteruskan ke dinas", fmt(t.routed_at)),
             ("Ditanggapi dinas", fmt(t.responded_at)), ("Selesai", fmt(t.resolved_at or t.closed_at))]
    if t.rejected_at:
        steps.append((f"Ditolak: {t.reject_reason or '-'}", fmt(t.rejected_at)))
    return {"number": t.number, "status": STATUS_LABEL.get(t.status, t.status),
            "opd": opd.name if opd else "Media Center (penentuan dinas)", "steps": steps,
            "latest": latest_public_response(session, t.id)}  # type: ignore[arg-type]


def mount(app: FastAPI, cfg: AppConfig) -> None:
    @app.get("/status/{number}.json", include_in_schema=False)
    def status_json(number: str) -> JSONResponse:
        with Session(get_engine()) as s:
            data = public_status(s, cfg, number)
        return JSONResponse(data or {"error": "not found"}, status_code=200 if data else 404)

    @app.get("/status/{number}", response_class=HTMLResponse, include_in_schema=False)
    def status_page(number: str) -> HTMLResponse:
        with Session(get_engine()) as s:
            data = public_status(s, cfg, number)
        if data is None:
            return HTMLResponse("<!doctype html><title>Tidak ditemukan</title><p>Nomor laporan tidak ditemukan.</p>",
                                status_code=404)
        return HTMLResponse(_PAGE.render(**data))
