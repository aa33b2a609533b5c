"""Open311 GeoReport v2 (https://wiki.open311.org/GeoReport_v2) so civic apps and city dashboards can
read and submit complaints with tools they already have.

Services are the OPD catalogue (service_code = OPD code); service requests are tickets
(service_request_id = ticket number). Reading is public and carries no personal data: the
description and notes go through the same redaction as public replies on X, and no reporter
field is ever output. Submitting needs an API key an admin issued (`aduan apikey add NAME`);
the request is stored through `core.intake` as an "open311" message and processed at once
with the client's service_code as the routing decision, so the answer carries the ticket
number (service type "realtime"). Dates are W3C datetimes shown in WIB with their offset.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from sqlmodel import Session, col, select

from connectors.twitter_text import redact
from core.civic_models import ApiKey
from core.config import AppConfig
from core.db import session_scope
from core.models import Ticket, utcnow

log = logging.getLogger(__name__)

CLOSED = ("resolved", "closed", "rejected")
HIDDEN = ("spam",)
REQUEST_FIELDS = ("service_request_id", "status", "status_notes", "service_name", "service_code", "description",
                  "agency_responsible", "service_notice", "requested_datetime", "updated_datetime",
                  "expected_datetime", "address", "address_id", "zipcode", "lat", "long", "media_url")
SERVICE_FIELDS = ("service_code", "service_name", "description", "metadata", "type", "keywords", "group")
FORMATS = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}


class Open311Error(Exception):
    def __init__(self, status: int, description: str):
        self.status, self.description = status, description


# ---------------------------------------------------------------- API keys


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def issue_key(session: Session, name: str, actor: str = "cli") -> str:
    """Create a key for client `name`; the plain key is returned once and only its hash is kept."""
    key = "o311_" + secrets.token_urlsafe(32)
    session.add(ApiKey(name=name.strip()[:80], key_hash=_digest(key), created_at=utcnow(), created_by=actor))
    return key


def check_key(session: Session, key: str | None) -> ApiKey:
    if not key:
        raise Open311Error(403, "api_key is required to submit a service request")
    row = session.exec(select(ApiKey).where(ApiKey.key_hash == _digest(key))).first()
    if row is None or row.revoked_at is not None:
        raise Open311Error(403, "invalid api_key")
    row.last_used_at = utcnow()
    return row


# ---------------------------------------------------------------- serialisation


def _w3c(cfg: AppConfig, when: datetime | None) -> str | None:
    return when.astimezone(ZoneInfo(cfg.hub.timezone)).isoformat(timespec="seconds") if when else None


def render(fmt: str, root: str, item: str, rows: list[dict[str, Any]], status: int = 200) -> Response:
    """JSON: a list of objects. XML: <root><item>field elements</item></root>, as the spec shows."""
    if fmt == "json":
        import json

        return Response(json.dumps(rows, ensure_ascii=False), status_code=status, media_type=FORMATS["json"])
    top = ET.Element(root)
    for row in rows:
        top.append(_xml_item(item, row))
    body = ET.tostring(top, encoding="unicode")
    return Response('<?xml version="1.0" encoding="utf-8"?>\n' + body, status_code=status, media_type=FORMATS["xml"])


def _xml_item(tag: str, row: dict[str, Any]) -> ET.Element:
    el = ET.Element(tag)
    for key, value in row.items():
        if isinstance(value, list):
            child = ET.SubElement(el, key)
            singular = {"attributes": "attribute", "values": "value"}.get(key, key.rstrip("s"))
            for v in value:
                child.append(_xml_item(singular, v))
        elif isinstance(value, dict):
            el.append(_xml_item(key, value))
        else:
            child = ET.SubElement(el, key)
            if value is not None:
                child.text = str(value).lower() if isinstance(value, bool) else str(value)
    return el


def error(fmt: str, status: int, description: str) -> Response:
    return render(fmt if fmt in FORMATS else "json", "errors", "error",
                  [{"code": status, "description": description}], status)


# ---------------------------------------------------------------- services


def _kelurahan_names() -> list[str]:
    from core.location import gazetteer

    return sorted(k["name"] for kec in gazetteer()["kecamatan"] for k in kec["kelurahan"])


def services(cfg: AppConfig) -> list[dict[str, Any]]:
    return [{"service_code": o.code, "service_name": o.name,
             "description": f"Laporan untuk {o.name}: " + ", ".join(o.keywords[:12]),
             "metadata": True, "type": "realtime", "keywords": ",".join(o.keywords),
             "group": o.categories[0] if o.categories else f"Pemerintah Kota {cfg.hub.city}"}
            for o in cfg.opds if o.active]


def _live(cfg: AppConfig) -> AppConfig:
    """The catalogue as admins left it in the console (added OPDs, retired ones)."""
    from core.console.overrides import effective_config

    with session_scope() as s:
        return effective_config(s, cfg)


def definition(cfg: AppConfig, code: str) -> dict[str, Any]:
    opd = cfg.opd(code)
    if opd is None or not opd.active:
        raise Open311Error(404, f"service_code {code!r} not found")
    attrs = [{"variable": True, "code": "kelurahan", "datatype": "singlevaluelist", "required": False,
              "datatype_description": "Kelurahan lokasi masalah", "order": 1,
              "description": "Kelurahan tempat masalah berada",
              "values": [{"key": n, "name": n} for n in _kelurahan_names()]}]
    if opd.categories:
        attrs.append({"variable": True, "code": "kategori", "datatype": "singlevaluelist", "required": False,
                      "datatype_description": "Jenis masalah", "order": 2, "description": "Jenis masalah",
                      "values": [{"key": c, "name": c} for c in opd.categories]})
    return {"service_code": opd.code, "attributes": attrs}


# ---------------------------------------------------------------- requests


def request_row(session: Session, cfg: AppConfig, t: Ticket) -> dict[str, Any]:
    """One ticket as a GeoReport service request; never the reporter, their contact or raw messages."""
    from core.selfservice import latest_public_response
    from core.sla import budgets

    opd = cfg.opd(t.opd_code)
    closed = t.status in CLOSED
    notes = t.reject_reason if t.status == "rejected" and t.reject_reason else \
        latest_public_response(session, t.id) if t.id else None  # type: ignore[arg-type]
    expected = None
    if not closed and t.created_at:
        expected = t.created_at + budgets(cfg, t.opd_code)[1]
    place = ", ".join(p for p in (t.street, f"Kel. {t.kelurahan}" if t.kelurahan else None,
                                  f"Kec. {t.kecamatan}" if t.kecamatan else None) if p)
    return {
        "service_request_id": t.number, "status": "closed" if closed else "open",
        "status_notes": redact(notes) if notes else None,
        "service_name": opd.name if opd else None, "service_code": t.opd_code,
        "description": redact(t.subject or "") or None, "agency_responsible": opd.name if opd else "Media Center",
        "service_notice": None, "requested_datetime": _w3c(cfg, t.created_at),
        "updated_datetime": _w3c(cfg, t.updated_at or t.created_at), "expected_datetime": _w3c(cfg, expected),
        "address": redact(place) if place else None, "address_id": None, "zipcode": None,
        "lat": t.lat, "long": t.lon, "media_url": None,
    }


def parse_w3c(name: str, value: str | None) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace(" ", "+"))  # a '+' in a query string arrives as ' '
    except ValueError:
        raise Open311Error(400, f"{name} must be a W3C datetime such as 2026-11-05T08:15:30+07:00") from None
    if when.tzinfo is None:
        raise Open311Error(400, f"{name} must include a time zone (Z or +07:00)")
    return when


def find_requests(session: Session, cfg: AppConfig, params: dict[str, str], now: datetime | None = None
                  ) -> list[Ticket]:
    """The spec's GET requests: ids win over every other filter; otherwise a date range of at most
    `max_days` (default: the last 90 days), service codes and open/closed, newest first, capped."""
    settings = cfg.channel("open311")
    q = select(Ticket).where(col(Ticket.number).is_not(None), col(Ticket.status).not_in(HIDDEN))
    ids = [i.strip().upper() for i in (params.get("service_request_id") or "").split(",") if i.strip()]
    if ids:
        return list(session.exec(q.where(col(Ticket.number).in_(ids)).order_by(col(Ticket.created_at).desc())).all())
    now = now or utcnow()
    span = timedelta(days=settings.max_days)
    start, end = parse_w3c("start_date", params.get("start_date")), parse_w3c("end_date", params.get("end_date"))
    if start and end and end < start:
        raise Open311Error(400, "end_date is before start_date")
    if start and end and end - start > span:
        raise Open311Error(400, f"start_date and end_date may not be more than {settings.max_days} days apart")
    if start is None and end is None:
        start, end = now - span, now
    elif start is None:
        start = end - span  # type: ignore[operator]
    elif end is None:
        end = start + span
    q = q.where(Ticket.created_at >= start, Ticket.created_at <= end)
    codes = [c.strip() for c in (params.get("service_code") or "").split(",") if c.strip()]
    if codes:
        q = q.where(col(Ticket.opd_code).in_(codes))
    statuses = {s.strip().lower() for s in (params.get("status") or "").split(",") if s.strip()}
    if statuses - {"open", "closed"}:
        raise Open311Error(400, "status must be open, closed or both (comma-separated)")
    if statuses == {"open"}:
        q = q.where(col(Ticket.status).not_in(CLOSED))
    elif statuses == {"closed"}:
        q = q.where(col(Ticket.status).in_(CLOSED))
    return list(session.exec(q.order_by(col(Ticket.created_at).desc()).limit(settings.max_results)).all())


def submit(cfg: AppConfig, form: dict[str, str]) -> dict[str, Any]:
    """Validate a POST, store it through core.intake, process it now routed to the service_code."""
    from connectors.open311 import Open311Connector
    from core import intake, pipeline
    from core.classify import Decision
    from core.queue import enqueue_outbound

    with session_scope() as s:
        client = check_key(s, form.get("api_key")).name
    cfg = _live(cfg)
    code = (form.get("service_code") or "").strip()
    if not code:
        raise Open311Error(400, "service_code is required")
    opd = cfg.opd(code)
    if opd is None or not opd.active:
        raise Open311Error(404, f"service_code {code!r} not found")
    has_point = form.get("lat") not in (None, "") and form.get("long") not in (None, "")
    if not has_point and not form.get("address_string") and not form.get("address_id"):
        raise Open311Error(400, "a location is required: lat and long, address_string or address_id")
    if has_point:
        try:
            lat, lon = float(form["lat"]), float(form["long"])
        except ValueError:
            raise Open311Error(400, "lat and long must be decimal degrees") from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise Open311Error(400, "lat must be within -90..90 and long within -180..180")
    description = (form.get("description") or "").strip()
    if len(description) > 4000:
        raise Open311Error(400, "description is limited to 4,000 characters")
    kelurahan = form.get("attribute[kelurahan]")
    if kelurahan and kelurahan not in _kelurahan_names():
        raise Open311Error(400, f"attribute[kelurahan] {kelurahan!r} is not a kelurahan of {cfg.hub.city}")
    text = " ".join(p for p in (description or opd.name, form.get("address_string"),
                                f"Kelurahan {kelurahan}" if kelurahan else None) if p)
    fields = {k: v for k, v in form.items() if k != "api_key"}
    raw = {"id": str(uuid.uuid4()), "client": client, "received_at": utcnow().isoformat(),
           "form": {**fields, "description": text}}
    msg = Open311Connector.parse(raw)
    assert msg is not None
    with session_scope() as s:  # stored (committed) first: a failure below leaves it for the reconciler
        row, _ = intake.store(s, msg)
        message_id = row.id
    decision = Decision(opd=opd.code, confidence=1.0, reasons=[f"open311 service_code {opd.code}"],
                        model_version="open311")
    with session_scope() as s:
        out = pipeline.process(s, cfg, message_id, decision=decision)  # type: ignore[arg-type]
        if out is not None and out.ticket and not out.duplicate_of and has_point:
            t = s.exec(select(Ticket).where(Ticket.number == out.ticket)).one()
            if t.lat is None:  # the text named the kelurahan; the client's point is still the precise spot
                t.lat, t.lon = lat, lon
    if out is None or out.ticket is None:
        raise Open311Error(500, "the request was stored but could not be processed; it will be processed later")
    for mid in out.outbound:
        try:
            enqueue_outbound(mid)
        except Exception as exc:  # noqa: BLE001 - the outbound reconciler queues it later
            log.warning("open311 acknowledgement %s not queued: %s", mid, exc)
    notice = (f"Laporan digabung dengan laporan warga lain yang sama ({out.duplicate_of})." if out.duplicate_of
              else f"Diteruskan ke {opd.name}.")
    return {"service_request_id": out.ticket, "service_notice": notice, "account_id": None}


# ---------------------------------------------------------------- routes


def _fmt(fmt: str) -> str:
    if fmt not in FORMATS:
        raise Open311Error(404, "format must be json or xml")
    return fmt


def router(cfg: AppConfig) -> APIRouter:
    r = APIRouter(prefix="/open311/v2", tags=["Open311 GeoReport v2"])

    @r.get("/services.{fmt}")
    def list_services(fmt: str) -> Response:
        return render(_fmt(fmt), "services", "service", services(_live(cfg)))

    @r.get("/services/{code}.{fmt}")
    def service_definition(code: str, fmt: str) -> Response:
        d = definition(_live(cfg), code)
        if _fmt(fmt) == "json":
            return render("json", "", "", d)  # type: ignore[arg-type]
        return Response('<?xml version="1.0" encoding="utf-8"?>\n' +
                        ET.tostring(_xml_item("service_definition", d), encoding="unicode"), media_type=FORMATS["xml"])

    @r.get("/requests.{fmt}")
    def list_requests(fmt: str, request: Request) -> Response:
        _fmt(fmt)
        with session_scope() as s:
            rows = [request_row(s, cfg, t) for t in find_requests(s, cfg, dict(request.query_params))]
        return render(fmt, "service_requests", "request", rows)

    @r.get("/requests/{request_id}.{fmt}")
    def one_request(request_id: str, fmt: str) -> Response:
        _fmt(fmt)
        with session_scope() as s:
            t = s.exec(select(Ticket).where(Ticket.number == request_id.upper(),
                                            col(Ticket.status).not_in(HIDDEN))).first()
            if t is None:
                raise Open311Error(404, f"service_request_id {request_id!r} not found")
            rows = [request_row(s, cfg, t)]
        return render(fmt, "service_requests", "request", rows)

    @r.post("/requests.{fmt}")
    async def create_request(fmt: str, request: Request) -> Response:
        import asyncio

        _fmt(fmt)
        from core.channel_switch import is_on_async

        if not await is_on_async(cfg, "open311"):  # switched off by an admin: reading stays open
            raise Open311Error(503, "the open311 channel is disabled by an administrator; nothing was stored")
        ctype = request.headers.get("content-type", "")
        if not ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            raise Open311Error(400, "send the request as application/x-www-form-urlencoded form fields")
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        result = await asyncio.to_thread(submit, cfg, form)
        return render(fmt, "service_requests", "request", [result])

    return r


def mount(app: FastAPI, cfg: AppConfig) -> None:
    """Register the GeoReport API (from core.web._EXTENSIONS) when the open311 channel is enabled."""
    if "open311" not in cfg.enabled_channels():
        return
    app.include_router(router(cfg))

    @app.exception_handler(Open311Error)
    async def open311_error(request: Request, exc: Open311Error) -> Response:
        fmt = "xml" if request.url.path.endswith(".xml") else "json"
        return error(fmt, exc.status, exc.description)
