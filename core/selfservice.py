"""Citizen self-service on every channel, and conversations that continue a ticket.

- "cek status ADU-2026-000123", "/status", "STATUS 123": the current status and the latest
  public response, answered only to a contact who reported that ticket.
- When an operator asks the citizen a question, the citizen's next message on that channel
  lands in the same ticket (and the SLA clocks, paused meanwhile, run again).
"""

from __future__ import annotations

import re
import uuid
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from core.config import AppConfig
from core.dedup_ops import merged_into
from core.models import Event, Message, Ticket, utcnow
from core.replies import queue_reply

STATUS_LABEL = {
    "new": "diterima, menunggu penentuan dinas", "routed": "diteruskan ke dinas terkait",
    "responded": "sudah ditanggapi dinas", "resolved": "selesai ditangani", "closed": "ditutup",
    "rejected": "ditolak",
}
_QUERY = re.compile(
    r"^\W*(?:/status(?:@\w+)?|(?:cek|cak|check)\s+status|status|cek|lacak)\b(?:\s+(?:laporan|aduan|tiket|no\.?|nomor))*"
    r"\s*[:#]?\s*(?P<ref>[a-z]{2,8}\s*-\s*\d{4}\s*-\s*\d{1,8}|\d{1,8})?\W*$",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"^(?P<prefix>[a-z]{2,8})\s*-\s*(?P<year>\d{4})\s*-\s*(?P<seq>\d{1,8})$", re.IGNORECASE)


def status_query(text: str) -> tuple[bool, str | None]:
    """(is a status query, the ticket reference or None for "my latest")."""
    m = _QUERY.match(text.strip()[:120])
    if not m:
        return False, None
    return True, m.group("ref")


def _find(session: Session, cfg: AppConfig, ref: str | None, contact_id: int | None) -> Ticket | None:
    if ref is None:
        return session.exec(
            select(Ticket).join(Message, Message.ticket_id == Ticket.id)
            .where(Message.contact_id == contact_id, Message.direction == "in")
            .order_by(col(Ticket.id).desc())).first()
    m = _NUMBER.match(ref.strip())
    if m:
        number = f"{m['prefix'].upper()}-{m['year']}-{int(m['seq']):06d}"
        return merged_into(session, session.exec(select(Ticket).where(Ticket.number == number)).first())
    return merged_into(session, session.get(Ticket, int(ref)))


def reported_by(session: Session, ticket_id: int, contact_id: int | None) -> bool:
    return session.exec(select(Message.id).where(Message.ticket_id == ticket_id, Message.contact_id == contact_id,
                                                 Message.direction == "in")).first() is not None


def latest_public_response(session: Session, ticket_id: int) -> str | None:
    """The newest reply an operator or OPD sent on this ticket (not automatic notices)."""
    row = session.exec(select(Message.text).where(
        Message.ticket_id == ticket_id, Message.direction == "out",
        col(Message.template).in_(["operator_reply", "responded", "resolved", "rejected"]))
        .order_by(col(Message.id).desc())).first()
    return row


def answer_status(session: Session, cfg: AppConfig, msg: Message, ref: str | None, notify: bool) -> Ticket | None:
    """Reply with the status of the referenced ticket, only if this contact reported it."""
    ticket = _find(session, cfg, ref, msg.contact_id)
    allowed = ticket is not None and reported_by(session, ticket.id, msg.contact_id)  # type: ignore[arg-type]
    msg.kind = "status_query"
    if notify:
        if allowed:
            assert ticket is not None
            latest = latest_public_response(session, ticket.id)  # type: ignore[arg-type]
            when = ticket.created_at.astimezone(ZoneInfo(cfg.hub.timezone)).strftime("%d-%m-%Y %H:%M WIB")
            queue_reply(session, cfg, msg, "status", ticket=ticket.number, status=STATUS_LABEL.get(ticket.status, ticket.status),
                        latest=f"Tanggapan terakhir: {latest}" if latest else f"Dilaporkan {when}.")
        else:
            queue_reply(session, cfg, msg, "status_unknown", ticket=(ref or "-").upper())
    return ticket if allowed else None


def awaiting_ticket(session: Session, contact_id: int | None) -> Ticket | None:
    """The open ticket on which an operator is waiting for this contact's answer."""
    return session.exec(
        select(Ticket).join(Message, Message.ticket_id == Ticket.id)
        .where(Message.contact_id == contact_id, Message.direction == "in",
               col(Ticket.awaiting_citizen_since).is_not(None),
               col(Ticket.status).in_(["new", "routed", "responded"]))
        .order_by(col(Ticket.id).desc())).first()


def attach_answer(session: Session, ticket: Ticket, msg: Message) -> None:
    """The citizen answered: the message joins the ticket and the SLA clocks resume."""
    now = utcnow()
    if ticket.awaiting_citizen_since:
        ticket.sla_paused_seconds += int((now - ticket.awaiting_citizen_since).total_seconds())
    ticket.awaiting_citizen_since = None
    ticket.updated_at = now
    msg.ticket_id, msg.kind = ticket.id, "answer"
    session.add(Event(at=now, actor="worker", action="ticket.citizen_answered", ticket_id=ticket.id, message_id=msg.id))


def ask_citizen(session: Session, cfg: AppConfig, ticket: Ticket, question: str, actor: str) -> Message | None:
    """An operator's question to the ticket's reporter; pauses the SLA clocks until the answer arrives."""
    first = session.exec(select(Message).where(Message.ticket_id == ticket.id, Message.direction == "in")
                         .order_by(col(Message.id))).first()
    if first is None:
        return None
    out = queue_reply(session, cfg, first, "question", key=f"question:{uuid.uuid4().hex}", author=actor,
                      ticket=ticket.number, text=question)
    ticket.awaiting_citizen_since = utcnow()
    session.add(Event(at=utcnow(), actor=actor, action="ticket.question", ticket_id=ticket.id,
                      data={"question": question}))
    return out
