"""Conversation threads: a citizen's reply to an earlier message belongs to that message's ticket.

Channel-agnostic. `in_reply_to` is the provider id of the message answered: either a citizen's
earlier message (its `external_id`) or one of the hub's replies (its `provider_id`, which lists
every part of a multi-part send as "a,b,c"). On X this is what keeps "ini fotonya min", posted
under the city's reply tweet, on the ticket it belongs to instead of opening a new one.
"""

from __future__ import annotations

from sqlalchemy import or_
from sqlmodel import Session, select

from core.models import Event, Message, Ticket, utcnow


def ticket_for_reply(session: Session, msg: Message) -> Ticket | None:
    """The ticket of the message `msg` answers, if the hub knows it (same channel only)."""
    ref = msg.in_reply_to
    if not ref:
        return None
    base = select(Message).where(Message.channel == msg.channel, Message.ticket_id.is_not(None),  # type: ignore[union-attr]
                                 Message.id != msg.id)
    hit = session.exec(base.where(Message.external_id == ref)).first()
    if hit is None:
        pid = Message.provider_id
        hit = session.exec(base.where(Message.direction == "out", or_(
            pid == ref, pid.like(f"{ref},%"), pid.like(f"%,{ref}"), pid.like(f"%,{ref},%")))).first()  # type: ignore[union-attr]
    return session.get(Ticket, hit.ticket_id) if hit is not None else None


def link_reply(session: Session, msg: Message) -> Ticket | None:
    """Attach `msg` to the ticket of the thread it replies to (kind 'thread'); None when it starts anew."""
    ticket = ticket_for_reply(session, msg)
    if ticket is None:
        return None
    msg.ticket_id, msg.kind = ticket.id, "thread"
    ticket.updated_at = utcnow()
    session.add(Event(at=utcnow(), actor="worker", action="message.thread", ticket_id=ticket.id,
                      message_id=msg.id, data={"in_reply_to": msg.in_reply_to}))
    return ticket
