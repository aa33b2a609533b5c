"""The inbox (queues, search, filters, SLA urgency, pagination, live refresh) and the overview.

OPD officers are pinned to their own OPD in the query itself, whatever the filters say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlmodel import Session, func, select

from core import sla
from core.console import deps
from core.db import session_scope
from core.models import Contact, Event, Message, Ticket, utcnow

router = APIRouter(prefix="/console", dependencies=[Depends(deps.csrf_protect)], include_in_schema=False)

PAGE_SIZE = 50
OPEN = ("new", "routed", "responded")
STATUSES = ("new", "routed", "responded", "resolved", "closed", "rejected")


@dataclass
class Filters:
    status: str = "open"  # open | all | one of STATUSES
    opd: str = ""  # code, "-" for no OPD (triage), "" for all
    channel: str = ""
    q: str = ""
    triage: bool = False
    sort: str = "sla"  # sla | new | old
    page: int = 1
    mentioned: str = ""  # a username: tickets whose internal notes @mention them

    @classmethod
    def from_request(cls, request: Request, ctx: deps.Ctx) -> "Filters":
        p = request.query_params
        status = p.get("status", "open")
        f = cls(status=status if status in ("open", "all", *STATUSES) else "open",
                opd=p.get("opd", "")[:32], channel=p.get("channel", "")[:32], q=p.get("q", "").strip()[:200],
                triage=p.get("triage") == "1", sort=p.get("sort") if p.get("sort") in ("sla", "new", "old") else "sla")
        try:
            f.page = max(1, min(10_000, int(p.get("page", "1"))))
        except ValueError:
            f.page = 1
        if p.get("mine") == "1":
            f.mentioned = ctx.username
        if ctx.role == "opd":  # an officer sees their OPD only, whatever the URL says
            f.opd, f.triage = ctx.user.opd_code or "?", False  # type: ignore[union-attr]
        return f

    def query(self, **override: object) -> str:
        d = {"status": self.status, "opd": self.opd, "channel": self.channel, "q": self.q,
             "triage": "1" if self.triage else "", "sort": self.sort, "page": self.page,
             "mine": "1" if self.mentioned else "", **override}
        return urlencode({k: v for k, v in d.items() if v not in ("", None)})


def _like(col: sa.ColumnElement, q: str) -> sa.ColumnElement:
    pattern = "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return func.lower(col).like(pattern, escape="\\")


def _where(f: Filters) -> list[sa.ColumnElement]:
    conds: list[sa.ColumnElement] = []
    if f.status == "open":
        conds.append(Ticket.status.in_(OPEN))
    elif f.status in STATUSES:
        conds.append(Ticket.status == f.status)
    if f.opd == "-" or f.triage:
        conds.append(sa.or_(Ticket.opd_code.is_(None), Ticket.triage.is_(True)))
    elif f.opd:
        conds.append(Ticket.opd_code == f.opd)
    if f.channel:
        conds.append(Ticket.channel == f.channel)
    if f.mentioned:  # notes store {"text": ..., "mentions": ["name", ...]} (json.dumps on both databases)
        noted = select(Event.ticket_id).where(Event.action == "note", Event.ticket_id.is_not(None),
                                              sa.cast(Event.data, sa.String).like(f'%"mentions": [%"{f.mentioned}"%'))
        conds.append(Ticket.id.in_(noted))
    if f.q:
        in_messages = select(Message.ticket_id).where(Message.ticket_id.is_not(None), _like(Message.text, f.q))
        by_sender = (select(Message.ticket_id).join(Contact, Contact.id == Message.contact_id)
                     .where(Message.ticket_id.is_not(None),
                            sa.or_(_like(Contact.address, f.q), _like(Contact.display_name, f.q))))
        conds.append(sa.or_(_like(Ticket.number, f.q), _like(Ticket.subject, f.q),
                            Ticket.id.in_(in_messages), Ticket.id.in_(by_sender)))
    return conds


def _sla_order(session: Session, cfg: object) -> list[sa.ColumnElement]:
    """ORDER BY for "closest to the OPD-response breach first", computed by the database.

    due = routed_at + the OPD's budget + paused time; tickets whose clock is not running
    (answered, waiting on the citizen, not routed) come after, oldest first. With an office-hours
    calendar the order is the same in practice; each row's exact remaining time comes from core.sla.
    """
    default, _ = sla.budgets(cfg, None)  # type: ignore[arg-type]
    special = [(o.code, sla.budgets(cfg, o.code)[0]) for o in cfg.opds]  # type: ignore[attr-defined]
    special = [(code, b) for code, b in special if b != default]
    budget: sa.ColumnElement = (sa.case(*[(Ticket.opd_code == code, b.total_seconds()) for code, b in special],
                                        else_=default.total_seconds()) if special else sa.literal(default.total_seconds()))
    if session.get_bind().dialect.name == "sqlite":
        epoch: sa.ColumnElement = func.julianday(Ticket.routed_at) * 86400.0
    else:
        epoch = func.extract("epoch", Ticket.routed_at)
    due = epoch + budget + func.coalesce(Ticket.sla_paused_seconds, 0)
    running = sa.and_(Ticket.routed_at.is_not(None), Ticket.responded_at.is_(None), Ticket.resolved_at.is_(None),
                      Ticket.rejected_at.is_(None), Ticket.awaiting_citizen_since.is_(None),
                      Ticket.status.in_(OPEN))
    return [sa.case((running, 0), else_=1), sa.case((running, due), else_=0), Ticket.created_at.asc()]


@dataclass
class Row:
    ticket: Ticket
    contact: Contact | None
    due: datetime | None
    remaining_min: int | None


def search(session: Session, cfg: object, f: Filters) -> tuple[list[Row], int]:
    """One page of tickets for these filters, and the total count."""
    conds = _where(f)
    now = utcnow()
    total = session.exec(select(func.count()).select_from(Ticket).where(*conds)).one()
    offset = (f.page - 1) * PAGE_SIZE
    order = _sla_order(session, cfg) if f.sort == "sla" else (
        [Ticket.created_at.desc()] if f.sort == "new" else [Ticket.created_at.asc()])
    page = list(session.exec(select(Ticket).where(*conds).order_by(*order, Ticket.id).offset(offset)
                             .limit(PAGE_SIZE)).all())
    contact_ids = {t.contact_id for t in page if t.contact_id}
    contacts = ({c.id: c for c in session.exec(select(Contact).where(Contact.id.in_(contact_ids))).all()}
                if contact_ids else {})
    rows = []
    for t in page:
        due = sla.due_at(cfg, t, now)  # type: ignore[arg-type]
        remaining = math.floor((due - now) / timedelta(minutes=1)) if due else None
        rows.append(Row(t, contacts.get(t.contact_id), due, remaining))
    return rows, int(total)


def _page(request: Request, ctx: deps.Ctx, partial: bool) -> Response:
    f = Filters.from_request(request, ctx)
    with session_scope() as s:
        rows, total = search(s, ctx.cfg, f)
        channels = sorted({c for c in s.exec(select(Ticket.channel).distinct()).all() if c})
    pages = max(1, math.ceil(total / PAGE_SIZE))
    name = "_rows.html" if partial else "inbox.html"
    return deps.render(ctx, name, rows=rows, total=total, f=f, pages=pages, channels=channels,
                       statuses=STATUSES, opds=ctx.cfg.opds)


@router.get("")
def inbox(request: Request, ctx: deps.Ctx = Depends(deps.require(*deps.STAFF))) -> Response:
    return _page(request, ctx, partial=False)


@router.get("/inbox/rows")
def inbox_rows(request: Request, ctx: deps.Ctx = Depends(deps.require(*deps.STAFF))) -> Response:
    """The list alone, polled by HTMX every 10 s so new complaints appear without a reload."""
    return _page(request, ctx, partial=True)


@router.get("/overview")
def overview(request: Request, ctx: deps.Ctx = Depends(deps.require("admin", "operator", "opd", "viewer"))) -> Response:
    """Counts only (no personal data): what a viewer may see."""
    with session_scope() as s:
        q_status = select(Ticket.status, func.count()).group_by(Ticket.status)
        q_opd = select(Ticket.opd_code, func.count()).where(Ticket.status.in_(OPEN)).group_by(Ticket.opd_code)
        if ctx.role == "opd":
            q_status = q_status.where(Ticket.opd_code == ctx.user.opd_code)  # type: ignore[union-attr]
            q_opd = q_opd.where(Ticket.opd_code == ctx.user.opd_code)  # type: ignore[union-attr]
        by_status = dict(s.exec(q_status).all())
        by_opd = sorted(s.exec(q_opd).all(), key=lambda r: -r[1])
    return deps.render(ctx, "overview.html", by_status=by_status, by_opd=by_opd, statuses=STATUSES)
