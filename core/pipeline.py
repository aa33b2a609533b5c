"""What a worker does with one stored inbound message, in one database transaction.

claim (stored -> processing) -> classify -> locate -> deduplicate -> open or extend a ticket
-> queue the acknowledgement -> processed. Because the claim and every write share one
transaction, a worker killed mid-job leaves the message `stored` for a retry, and two workers
racing on the same message produce one ticket and one acknowledgement.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlmodel import Session, func, select

from core import dedup, musrenbang
from core.classify import Decision, get_classifier
from core.config import AppConfig
from core.location import Place, extract, nearest_kelurahan
from core.models import Contact, Event, Message, Ticket, utcnow
from core.replies import PENDING_KEY, queue_reply, take_pending
from core.threads import link_reply
from core.selfservice import answer_status, attach_answer, awaiting_ticket, status_query

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    message_id: int
    channel: str
    external_id: str
    ticket: str | None = None
    opd: str | None = None
    status: str = "processed"
    duplicate_of: str | None = None
    kind: str = "complaint"
    outbound: list[int] = field(default_factory=list)

    def public(self) -> dict[str, object]:
        """The stable line `aduan ingest --json` prints."""
        d = asdict(self)
        return {k: d[k] for k in ("channel", "external_id", "ticket", "opd", "status", "duplicate_of")}


def ticket_number(cfg: AppConfig, ticket_id: int | None, created_at: datetime | None) -> str:
    """ADU-2026-000123: the prefix, the year the case was opened (in the hub's time zone), the id."""
    assert ticket_id is not None and created_at is not None
    year = created_at.astimezone(ZoneInfo(cfg.hub.timezone)).year
    return f"{cfg.hub.ticket_prefix}-{year}-{ticket_id:06d}"


def opd_name(cfg: AppConfig, code: str | None) -> str:
    opd = cfg.opd(code)
    return opd.name if opd else "Media Center"


def claim(session: Session, message_id: int) -> Message | None:
    """Take the message for this transaction; None when another worker has done it already."""
    res = session.exec(  # type: ignore[call-overload]
        update(Message).where(Message.id == message_id, Message.state == "stored").values(state="processing")
    )
    if res.rowcount != 1:
        return None
    return session.get(Message, message_id)


def locate(msg: Message) -> Place:
    place = extract(msg.text or "")
    if msg.location and place.kelurahan is None:
        pin = nearest_kelurahan(msg.location["lat"], msg.location["lon"])
        place = Place(kecamatan=pin.kecamatan, kelurahan=pin.kelurahan, street=place.street,
                      landmark=place.landmark, rt=place.rt, rw=place.rw, lat=pin.lat, lon=pin.lon)
    return place


def process(session: Session, cfg: AppConfig, message_id: int, notify: bool = True,
            decision: Decision | None = None) -> Outcome | None:
    """Process one message inside `session` (the caller commits). None if already processed."""
    msg = claim(session, message_id)
    if msg is None:
        return None
    out = Outcome(message_id=message_id, channel=msg.channel, external_id=msg.external_id)
    contact = session.get(Contact, msg.contact_id)
    now = utcnow()
    msg.state, msg.processed_at = "processed", now
    if contact is not None and contact.blocked:
        msg.kind, out.status, out.kind = "blocked", "blocked", "blocked"
        return out
    if contact is not None and _flooding(session, cfg, msg, contact):
        msg.kind, out.status, out.kind = "throttled", "throttled", "throttled"
        return out
    is_query, ref = status_query(msg.text or "")
    if is_query:
        ticket = answer_status(session, cfg, msg, ref, notify)
        out.kind = out.status = "status_query"
        out.ticket = ticket.number if ticket else None
        return _done(session, out)
    if musrenbang.handle(session, cfg, msg, notify):  # an e-Musrenbang proposal conversation, not a complaint
        out.kind = out.status = "proposal"
        return _done(session, out)
    waiting = awaiting_ticket(session, msg.contact_id)
    if waiting is not None:
        attach_answer(session, waiting, msg)
        out.kind, out.ticket, out.opd, out.status = "answer", waiting.number, waiting.opd_code, waiting.status
        return _done(session, out)
    thread = link_reply(session, msg)
    if thread is not None:  # a reply in the thread of an existing ticket (e.g. under the city's reply)
        out.kind, out.ticket, out.opd, out.status = "thread", thread.number, thread.opd_code, thread.status
        return _done(session, out)
    decision = decision or get_classifier(cfg).classify(msg.text or "", msg.channel)
    if not decision.complaint:
        msg.kind, out.status, out.kind = "non_complaint", "non_complaint", "non_complaint"
        session.add(Event(at=now, actor="worker", action="message.non_complaint", message_id=msg.id))
        return out
    place = locate(msg)
    match = dedup.find_match(session, cfg, msg, decision, place)
    if match is not None:
        return _join(session, cfg, msg, match, out, notify)
    ticket = _open_ticket(session, cfg, msg, decision, place)
    dedup.index(session, cfg, ticket, msg)
    out.ticket, out.opd, out.status = ticket.number, ticket.opd_code, ticket.status
    if notify:
        template = "ack" if ticket.opd_code else "ack_triage"
        queue_reply(session, cfg, msg, template, ticket=ticket.number, opd=opd_name(cfg, ticket.opd_code))
    return _done(session, out)


def _flooding(session: Session, cfg: AppConfig, msg: Message, contact: Contact) -> bool:
    """More than the configured messages a minute from one sender: stored, flagged, not processed further."""
    since = (msg.received_at or utcnow()) - timedelta(minutes=1)
    recent = session.exec(select(func.count()).select_from(Message).where(
        Message.contact_id == contact.id, Message.direction == "in", Message.received_at > since,
        Message.received_at <= msg.received_at, Message.id != msg.id)).one()
    if recent < cfg.flood.max_per_minute:
        return False
    if contact.flagged_at is None:
        contact.flagged_at = utcnow()
        session.add(Event(at=utcnow(), actor="worker", action="contact.flagged", message_id=msg.id,
                          data={"contact": contact.id, "per_minute": recent + 1}))
    return True


def _done(session: Session, out: Outcome) -> Outcome:
    out.outbound = take_pending(session)
    return out


def process_each(session: Session, cfg: AppConfig, ids: list[int],
                 decisions: dict[int, Decision] | None = None) -> tuple[list[Outcome], dict[int, Exception]]:
    """Process messages one at a time in one transaction (core.batch sends the unusual ones here):
    one classifier call for all, one savepoint per message so a failing message is rolled back
    alone. Returns (outcomes, failures)."""
    if not ids:
        return [], {}
    rows = {m.id: m for m in session.exec(select(Message).where(Message.id.in_(ids), Message.state == "stored"))}
    order = [i for i in dict.fromkeys(ids) if i in rows]
    known = decisions or {}
    todo = [i for i in order if i not in known]
    fresh = get_classifier(cfg).classify_many([rows[i].text or "" for i in todo], [rows[i].channel for i in todo])
    by_id = {**known, **dict(zip(todo, fresh))}
    outcomes: list[Outcome] = []
    failures: dict[int, Exception] = {}
    for mid in order:
        try:
            with session.begin_nested():
                outcome = process(session, cfg, mid, decision=by_id[mid])
        except Exception as exc:  # noqa: BLE001 - the message is retried on its own
            session.info.pop(PENDING_KEY, None)
            failures[mid] = exc
            continue
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes, failures


def _open_ticket(session: Session, cfg: AppConfig, msg: Message, decision: Decision, place: Place) -> Ticket:
    received = msg.received_at or utcnow()
    ticket = Ticket(
        channel=msg.channel, contact_id=msg.contact_id, subject=(msg.text or "")[:200],
        opd_code=decision.opd, status="routed" if decision.opd else "new", triage=decision.triage,
        confidence=decision.confidence, model_version=decision.model_version, reasons=decision.reasons,
        kecamatan=place.kecamatan, kelurahan=place.kelurahan, street=place.street, landmark=place.landmark,
        place_key=place.key(), lat=place.lat, lon=place.lon,
        created_at=received, routed_at=received if decision.opd else None, updated_at=utcnow(),
    )
    session.add(ticket)
    session.flush()
    ticket.number = ticket_number(cfg, ticket.id, ticket.created_at)
    msg.ticket_id, msg.kind = ticket.id, "complaint"
    session.add(Event(at=utcnow(), actor="worker", action="ticket.created", ticket_id=ticket.id,
                      message_id=msg.id, data={"opd": ticket.opd_code, "confidence": decision.confidence,
                                               "reasons": decision.reasons, "triage": decision.triage,
                                               "model": decision.model_version}))
    return ticket


def _join(session: Session, cfg: AppConfig, msg: Message, match: dedup.Match, out: Outcome,
          notify: bool) -> Outcome:
    ticket = session.get(Ticket, match.ticket_id)
    assert ticket is not None
    new_reporter = match.kind == "case" and not dedup.has_reported(session, ticket.id, msg.contact_id, msg.id)
    msg.ticket_id, msg.kind = ticket.id, match.kind
    msg.dedup = {"kind": match.kind, "ticket": ticket.number, "score": match.score, **match.reasons}
    if new_reporter:
        ticket.reporters += 1
    ticket.updated_at = utcnow()
    session.add(Event(at=utcnow(), actor="worker", action=f"dedup.{match.kind}", ticket_id=ticket.id,
                      message_id=msg.id, data=msg.dedup))
    out.ticket, out.opd, out.status = ticket.number, ticket.opd_code, ticket.status
    out.duplicate_of, out.kind = ticket.number, match.kind
    if notify:
        # At most one "we already have this" per contact and ticket; one join notice per reporter.
        template = "duplicate_joined" if match.kind == "case" else "repeat"
        queue_reply(session, cfg, msg, template, key=f"{template}:{ticket.id}:{msg.contact_id}",
                    ticket=ticket.number, opd=opd_name(cfg, ticket.opd_code))
    return _done(session, out)


def received_wib(cfg: AppConfig, when: datetime) -> str:
    return when.astimezone(ZoneInfo(cfg.hub.timezone)).strftime("%d-%m-%Y %H:%M WIB")
