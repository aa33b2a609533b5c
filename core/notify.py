"""Messages to staff (SLA warnings and escalations) through the same outbound queue as citizen replies.

Each notification is an outbound `Message` whose external id is its idempotency key, so the
database's unique constraint makes it exist once, whoever creates it first. Without a configured
target the row is still written (state ``suppressed``) so the console shows the alert.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from core.config import AppConfig, NotifyTarget
from core.intake import get_or_create_contact
from core.models import Event, Message, Ticket, utcnow
from core.replies import PENDING_KEY, render


def notify_staff(session: Session, cfg: AppConfig, ticket: Ticket, target: NotifyTarget | None, template: str,
                 key: str, action: str, values: dict[str, Any], actor: str = "sla") -> int | None:
    """Create the notification once; returns its message id, or None if it already existed."""
    channel = target.channel if target else "internal"
    contact = get_or_create_contact(session, channel, target.address, "Petugas") if target else None
    text = render(cfg, channel, template, **values)
    out = Message(direction="out", channel=channel, external_id=f"out:{key}", ticket_id=ticket.id,
                  contact_id=contact.id if contact else None, text=text, template=template,
                  delivery_state="pending" if target else "suppressed",
                  error=None if target else "no notification target configured (config: opds[].officers/head, sla.supervisor)",
                  created_at=utcnow(), received_at=utcnow(), state="processed", author=actor)
    try:
        with session.begin_nested():
            session.add(out)
    except IntegrityError:
        return None
    if target:
        session.info.setdefault(PENDING_KEY, []).append(out.id)
    session.add(Event(at=utcnow(), actor=actor, action=action, ticket_id=ticket.id, message_id=out.id,
                      data={"key": key, "target": target.model_dump() if target else None}))
    return out.id if target else None
