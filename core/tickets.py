"""Ticket lifecycle changes made by people (console, CLI): status, responses, and telling every reporter.

new -> routed -> responded -> resolved -> closed, or rejected (with a mandatory reason). Every
change is an audited Event with before/after. When a case is answered, resolved or rejected,
each reporter of the (possibly merged) case is told on their own channel, once.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from core.config import AppConfig
from core.models import Event, Message, Ticket, utcnow
from core.replies import queue_reply

LIFECYCLE = ("new", "routed", "responded", "resolved", "closed", "rejected")
ALLOWED = {
    "new": {"routed", "rejected", "spam"},
    "routed": {"responded", "resolved", "rejected", "routed"},
    "responded": {"resolved", "rejected", "responded"},
    "resolved": {"closed", "responded"},
    "closed": {"responded"},
    "rejected": {"routed"},
    "spam": {"new"},
}
NOTIFY = {"responded": "responded", "resolved": "resolved", "rejected": "rejected"}


class TransitionError(ValueError):
    """A status change that the lifecycle does not allow, phrased for the operator."""


def first_reports(session: Session, ticket_id: int) -> list[Message]:
    """Each reporter's first message on the ticket (one per contact), to answer them on their channel."""
    rows = session.exec(select(Message).where(Message.ticket_id == ticket_id, Message.direction == "in",
                                              col(Message.contact_id).is_not(None))
                        .order_by(col(Message.id))).all()
    seen: dict[int, Message] = {}
    for m in rows:
        seen.setdefault(m.contact_id, m)  # type: ignore[arg-type]
    return list(seen.values())


def notify_reporters(session: Session, cfg: AppConfig, ticket: Ticket, template: str, key: str,
                     **values: Any) -> list[Message]:
    """Queue the same notice to every reporter of the case (idempotent per key and contact)."""
    from core.pipeline import opd_name

    sent = []
    for msg in first_reports(session, ticket.id):  # type: ignore[arg-type]
        out = queue_reply(session, cfg, msg, template, key=f"{key}:{msg.contact_id}", ticket=ticket.number,
                          opd=opd_name(cfg, ticket.opd_code), **values)
        if out is not None:
            sent.append(out)
    if sent and ticket.feedback_at is None:
        ticket.feedback_at = utcnow()
    return sent


def set_status(session: Session, cfg: AppConfig, ticket: Ticket, status: str, actor: str,
               response: str | None = None, reason: str | None = None) -> list[Message]:
    """Move the ticket along its lifecycle, audit it, and tell the reporters when it matters."""
    if status not in ALLOWED.get(ticket.status, set()) and status != ticket.status:
        raise TransitionError(f"cannot go from '{ticket.status}' to '{status}'")
    if status == "rejected" and not (reason or "").strip():
        raise TransitionError("a rejection needs a reason the citizen will read")
    before = {"status": ticket.status, "opd": ticket.opd_code}
    now = utcnow()
    ticket.status, ticket.updated_at = status, now
    stamp = {"routed": "routed_at", "responded": "responded_at", "resolved": "resolved_at",
             "closed": "closed_at", "rejected": "rejected_at"}.get(status)
    if stamp and getattr(ticket, stamp) is None:
        setattr(ticket, stamp, now)
    if status == "rejected":
        ticket.reject_reason = reason
    if status == "resolved" and ticket.responded_at is None:
        ticket.responded_at = now
    session.add(Event(at=now, actor=actor, action="ticket.status", ticket_id=ticket.id,
                      data={"before": before, "after": {"status": status}, "reason": reason, "response": response}))
    template = NOTIFY.get(status)
    if template is None:
        return []
    key = f"{status}:{ticket.id}:{now.timestamp():.0f}"
    return notify_reporters(session, cfg, ticket, template, key, response=(response or "").strip(),
                            reason=(reason or "").strip())


def reroute(session: Session, cfg: AppConfig, ticket: Ticket, opd_code: str, actor: str, reason: str) -> None:
    """Send the ticket to another OPD (an operator's correction); the classifier learns from it."""
    if cfg.opd(opd_code) is None:
        raise TransitionError(f"unknown OPD code {opd_code!r}")
    if not reason.strip():
        raise TransitionError("re-routing needs a reason")
    before = {"opd": ticket.opd_code, "status": ticket.status, "triage": ticket.triage}
    now = utcnow()
    ticket.opd_code, ticket.triage, ticket.updated_at = opd_code, False, now
    ticket.routed_at = now  # the OPD's 60 minutes start when it receives the ticket
    if ticket.status in ("new", "rejected"):
        ticket.status = "routed"
    session.add(Event(at=now, actor=actor, action="ticket.reroute", ticket_id=ticket.id,
                      data={"before": before, "after": {"opd": opd_code}, "reason": reason}))
