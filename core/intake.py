"""Where every connector hands over a citizen's message: store first, then queue.

`accept` commits the message to the database before it returns, so a connector can tell
the provider "OK" only for messages that are safe. If Redis is down the message is still
stored (state ``stored``) and `reconcile` queues it later. A re-delivered message (same
channel and external id) is recognised by the unique constraint and not queued again.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import redis
from sqlalchemy import or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.db import session_scope
from core.message import InboundMessage
from core.models import Contact, Message, utcnow

log = logging.getLogger(__name__)


@dataclass
class Accepted:
    message_id: int
    created: bool  # False: a re-delivery of a message already stored
    queued: bool


def get_or_create_contact(session: Session, channel: str, address: str, display: str | None) -> Contact:
    stmt = select(Contact).where(Contact.channel == channel, Contact.address == address)
    contact = session.exec(stmt).first()
    if contact is None:
        contact = Contact(channel=channel, address=address, display_name=display, created_at=utcnow())
        try:
            with session.begin_nested():
                session.add(contact)
        except IntegrityError:  # another process created it a moment ago
            contact = session.exec(stmt).one()
    elif display and contact.display_name != display:
        contact.display_name = display
    return contact


def store(session: Session, msg: InboundMessage) -> tuple[Message, bool]:
    """Insert the message (and its contact) in `session`; returns (row, created)."""
    existing = session.exec(
        select(Message).where(Message.channel == msg.channel, Message.external_id == msg.external_id)
    ).first()
    if existing is not None:
        return existing, False
    contact = get_or_create_contact(session, msg.channel, msg.sender, msg.sender_display)
    contact.last_inbound_at = msg.received_at
    row = Message(
        direction="in", channel=msg.channel, external_id=msg.external_id, contact_id=contact.id,
        text=msg.text, sender_display=msg.sender_display,
        attachments=[a.model_dump() for a in msg.attachments],
        location=msg.location.model_dump() if msg.location else None,
        in_reply_to=msg.in_reply_to, public=msg.public, raw=msg.raw,
        received_at=msg.received_at, created_at=utcnow(), state="stored",
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # a concurrent re-delivery won the race
        row = session.exec(
            select(Message).where(Message.channel == msg.channel, Message.external_id == msg.external_id)
        ).one()
        return row, False
    return row, True


_SQLITE_WRITER = threading.Lock()


def _writer() -> threading.Lock | contextlib.nullcontext:
    """SQLite has one writer at a time: the web's request threads take turns here instead of
    spinning on the database lock. PostgreSQL needs no such turn-taking."""
    from core.db import get_engine

    return _SQLITE_WRITER if get_engine().dialect.name == "sqlite" else contextlib.nullcontext()


def accept(msg: InboundMessage) -> Accepted:
    """Persist, commit, then queue. Raises only if the database is unreachable."""
    with _writer(), session_scope() as session:
        row, created = store(session, msg)
        message_id = row.id
        pending = row.state == "stored"
    assert message_id is not None
    queued = False
    if created or pending:
        queued = _try_enqueue(message_id)
    log.info("message stored" if created else "message re-delivered",
             extra={"message_id": message_id, "channel": msg.channel})
    return Accepted(message_id=message_id, created=created, queued=queued)


def _try_enqueue(*message_ids: int, force: bool = False) -> bool:
    from core.queue import push_inbound

    try:
        push_inbound(list(message_ids), force=force)
        return True
    except (redis.RedisError, OSError) as exc:
        log.warning("%d message(s) stored but not queued (%s); the reconciler will queue them",
                    len(message_ids), exc)
        return False


def accept_many(msgs: list[InboundMessage]) -> list[Accepted]:
    """Store a batch in one transaction, then queue the new ones in one round trip (pollers, imports)."""
    with session_scope() as session:
        rows = [store(session, m) for m in msgs]
        results = [(row.id, created, row.state == "stored") for row, created in rows]
    todo = [mid for mid, created, pending in results if created or pending]
    queued = _try_enqueue(*todo) if todo else False
    return [Accepted(message_id=mid, created=created, queued=queued and (created or pending))  # type: ignore[arg-type]
            for mid, created, pending in results]


def reconcile(older_than: timedelta = timedelta(seconds=30)) -> int:
    """Queue stored-but-unprocessed messages (after a Redis outage or a lost job). Returns how many."""
    cutoff = datetime.now(timezone.utc) - older_than
    with session_scope() as session:
        ids = session.exec(
            select(Message.id).where(Message.direction == "in", Message.state == "stored",
                                     Message.created_at < cutoff,
                                     # a failing message waits for its own retry job, unless that is long lost
                                     or_(Message.attempts == 0, Message.created_at < cutoff - timedelta(hours=2)))
            .order_by(Message.id).limit(5000)
        ).all()
    good = [i for i in ids if i is not None]
    return len(good) if good and _try_enqueue(*good, force=True) else 0


async def accept_or_503(msg: InboundMessage):  # type: ignore[no-untyped-def]
    """For webhooks: store the message, answer 200 only when it is stored, 503 when the database is down
    (Telegram and Twilio then deliver it again later)."""
    import asyncio

    from fastapi.responses import JSONResponse
    from sqlalchemy.exc import OperationalError, InterfaceError

    try:
        result = await asyncio.to_thread(accept, msg)
    except (OperationalError, InterfaceError) as exc:
        log.error("database unavailable, asking the provider to retry: %s", exc.__class__.__name__)
        return JSONResponse({"ok": False, "error": "temporarily unavailable, retry later"}, status_code=503)
    return JSONResponse({"ok": True, "message_id": result.message_id, "duplicate": not result.created})
