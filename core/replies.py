"""Replies to citizens: rendered from Indonesian templates, stored, then delivered once.

Every outbound message is a `Message` row (direction "out") written in the same transaction
as the decision that caused it, with an idempotency key as its external id, so the same
acknowledgement can never be created twice. Delivery claims the row (pending -> sending)
before calling the provider and records the provider id after, so a retry never sends twice.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from string import Formatter
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from connectors.base import Outgoing, PermanentError, RetryableError
from core.config import AppConfig
from core.db import insert_ignore, session_scope
from core.models import Contact, Event, Message, utcnow

log = logging.getLogger(__name__)

PENDING_KEY = "aduan_pending_outbound"
FINAL_STATES = {"sent", "delivered", "failed", "suppressed", "undelivered"}


class _SafeDict(dict):
    def __missing__(self, key: str) -> str:
        return "-"


def render(cfg: AppConfig, channel: str, template: str, **values: Any) -> str:
    """The template text for `channel` (a channel block may override any template)."""
    text = cfg.templates[template]
    try:
        text = cfg.channel(channel).templates.get(template, text)
    except KeyError:
        pass
    return Formatter().vformat(text, (), _SafeDict(values)).strip()


def queue_reply(session: Session, cfg: AppConfig, inbound: Message, template: str,
                key: str | None = None, author: str | None = None, **values: Any) -> Message | None:
    """Create the outbound row answering `inbound` (idempotent on `key`); None if it already exists."""
    contact = session.get(Contact, inbound.contact_id) if inbound.contact_id else None
    muted = None
    if contact is not None and (contact.opted_out or contact.blocked):
        muted = contact.opted_out_reason or "contact opted out or blocked"
    out = Message(**outbound_row(cfg, inbound, template, key, muted, ticket_id=inbound.ticket_id, author=author,
                                 **values))
    try:
        with session.begin_nested():
            session.add(out)
    except IntegrityError:
        return None
    if out.delivery_state == "pending":
        session.info.setdefault(PENDING_KEY, []).append(out.id)
    return out


def outbound_row(cfg: AppConfig, inbound: Any, template: str, key: str | None, muted: str | None,
                 ticket_id: int | None, author: str | None = None, **values: Any) -> dict[str, Any]:
    """The columns of the reply answering `inbound` (a Message or a row); `muted` is why it is not sent."""
    now = utcnow()
    return dict(
        direction="out", channel=inbound.channel, external_id=f"out:{key or f'{template}:{inbound.id}'}",
        contact_id=inbound.contact_id, ticket_id=ticket_id, text=render(cfg, inbound.channel, template, **values),
        template=template, reply_to_id=inbound.id, public=inbound.public,
        delivery_state="suppressed" if muted else "pending", error=muted,
        created_at=now, received_at=now, state="processed", author=author, attempts=0,
    )


def upsert_outbound(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert many replies at once; one whose idempotency key exists already is skipped.
    Returns external id -> message id of the new replies that are to be delivered."""
    if not rows:
        return {}
    table = Message.__table__  # type: ignore[attr-defined]
    stmt = insert_ignore(session, table, ["channel", "external_id"])
    created = session.execute(stmt.returning(table.c.id, table.c.external_id, table.c.delivery_state), rows).all()
    return {ext: mid for mid, ext, state in created if state == "pending"}


def take_pending(session: Session) -> list[int]:
    """Ids of replies created in this session, to enqueue once the transaction has committed."""
    return session.info.pop(PENDING_KEY, [])


@dataclass
class Delivery:
    state: str
    provider_id: str | None = None
    retry_in: float | None = None


def _claim(message_id: int) -> Message | None:
    """Move a pending/retry message to 'sending' atomically; None if someone else has it or it is done."""
    with session_scope() as s:
        res = s.exec(  # type: ignore[call-overload]
            update(Message).where(Message.id == message_id, Message.delivery_state.in_(["pending", "retry"]))
            .values(delivery_state="sending", attempts=Message.attempts + 1)
        )
        if res.rowcount != 1:
            return None
        return s.get(Message, message_id)


def backoff(attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter, at least what the provider asked for."""
    base = min(600.0, 2.0 ** attempt)
    return max(retry_after or 0.0, random.uniform(base / 2, base))


def deliver(cfg: AppConfig, message_id: int) -> Delivery:
    """Send one stored outbound message through its channel's connector, at most once."""
    from core.channels import get_connector
    from core.ratelimit import wait_for_slot
    from core.redisconn import get_redis

    with session_scope() as s:
        out = s.get(Message, message_id)
        if out is None or out.delivery_state not in ("pending", "retry"):
            return Delivery(state="skipped")
        contact = s.get(Contact, out.contact_id)
        inbound = s.get(Message, out.reply_to_id) if out.reply_to_id else None
    assert contact is not None
    req = Outgoing(to=contact.address, text=out.text, public=out.public, idempotency_key=out.external_id,
                   reply_to=inbound.external_id if inbound is not None else None,
                   context=(inbound.raw or {}) if inbound is not None else {})
    try:
        connector = get_connector(cfg, out.channel)
    except KeyError:
        _finish(message_id, "failed", error=f"channel {out.channel!r} is not enabled in the configuration")
        return Delivery(state="failed")
    wait = wait_for_slot(get_redis(), connector.limits(req))
    if wait > 0:  # over a provider limit: try again when the window reopens (nothing is dropped)
        return Delivery(state="retry", retry_in=wait)
    claimed = _claim(message_id)
    if claimed is None:
        return Delivery(state="skipped")
    out = claimed
    try:
        result = connector.send(req)
    except RetryableError as exc:
        final = out.attempts >= cfg.queue.outbound_max_attempts
        delay = None if final else backoff(out.attempts, exc.retry_after)
        _finish(message_id, "failed" if final else "retry", error=str(exc))
        return Delivery(state="failed" if final else "retry", retry_in=delay)
    except PermanentError as exc:
        _finish(message_id, "failed", error=f"{exc.code or ''} {exc}".strip(), opt_out=exc.opt_out)
        return Delivery(state="failed")
    _finish(message_id, result.state, provider_id=result.provider_id, parts=result.parts)
    return Delivery(state=result.state, provider_id=result.provider_id)


def _finish(message_id: int, state: str, provider_id: str | None = None, error: str | None = None,
            opt_out: bool = False, parts: int | None = None) -> None:
    with session_scope() as s:
        out = s.get(Message, message_id)
        assert out is not None
        out.delivery_state = state
        out.error = error
        if provider_id:
            out.provider_id = provider_id
            out.sent_at = utcnow()
        if opt_out and out.contact_id:
            contact = s.get(Contact, out.contact_id)
            if contact is not None:
                contact.opted_out = True
                contact.opted_out_reason = error
        s.add(Event(at=utcnow(), actor="worker", action=f"outbound.{state}", ticket_id=out.ticket_id,
                    message_id=message_id, data={"error": error} if error else {"provider_id": provider_id, "parts": parts}))


def reconcile_outbound(stale_pending: timedelta = timedelta(minutes=1),
                       stale_sending: timedelta = timedelta(minutes=5)) -> dict[str, int]:
    """Re-queue replies whose job was lost; flag replies whose send outcome is unknown.

    A reply stuck in ``sending`` means a worker died between the provider call and the record:
    it may or may not have reached the citizen, so it is NOT re-sent blindly. It becomes
    ``unconfirmed`` and an operator decides (the console offers "send again").
    """
    from core.queue import enqueue_outbound

    now = utcnow()
    with session_scope() as s:
        pending = s.exec(select(Message.id, Message.attempts).where(
            Message.direction == "out", Message.delivery_state == "pending",
            Message.created_at < now - stale_pending)).all()
        stuck = s.exec(select(Message).where(
            Message.direction == "out", Message.delivery_state == "sending",
            Message.created_at < now - stale_sending)).all()
        for m in stuck:
            m.delivery_state = "unconfirmed"
            m.error = "worker stopped while sending; check with the provider before sending again"
            s.add(Event(at=now, actor="reconciler", action="outbound.unconfirmed", ticket_id=m.ticket_id,
                        message_id=m.id))
    for mid, attempts in pending:
        enqueue_outbound(mid, attempt=attempts)
    return {"requeued": len(pending), "unconfirmed": len(stuck)}


# Provider delivery reports (e.g. Twilio's status callback). A report never moves a reply
# backwards (a late "sent" after "delivered"), and a failed part of a multi-part reply wins.
DELIVERY_RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3, "undelivered": 4, "failed": 4}


def record_delivery_status(channel: str, provider_id: str, state: str, error_code: str | None = None,
                           error: str | None = None, opt_out: bool = False) -> int | None:
    """Apply a provider's delivery report to the outbound message it concerns (matched by provider id,
    also inside a comma-joined multi-part id). Returns the message id, None when unknown."""
    with session_scope() as s:
        base = select(Message).where(Message.channel == channel, Message.direction == "out")
        out = s.exec(base.where(Message.provider_id == provider_id)).first() or \
            s.exec(base.where(Message.provider_id.like(f"%{provider_id}%"))).first()  # type: ignore[union-attr]
        if out is None:
            return None
        current = DELIVERY_RANK.get(out.delivery_state or "", -1)
        if DELIVERY_RANK.get(state, -1) >= current:
            out.delivery_state = state
            if error:
                out.error = error
        if opt_out and out.contact_id:
            contact = s.get(Contact, out.contact_id)
            if contact is not None and not contact.opted_out:
                contact.opted_out, contact.opted_out_reason = True, error or f"{channel} opt-out ({error_code})"
        s.add(Event(at=utcnow(), actor="provider", action=f"outbound.{state}", ticket_id=out.ticket_id,
                    message_id=out.id, data={"provider_id": provider_id, "error_code": error_code, "error": error}))
        return out.id
