"""Where every connector hands over a citizen's message: store first, then queue.

`accept` commits the message to the database before it returns, so a connector can tell
the provider "OK" only for messages that are safe. If Redis is down the message is still
stored (state ``stored``) and `reconcile` queues it later. A re-delivered message (same
channel and external id) is recognised by the unique constraint and not queued again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import redis
import sqlalchemy as sa
from sqlalchemy import or_
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlmodel import Session, select

from core.db import insert_ignore, one_of, session_scope
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
    """Persist, commit, then queue. Raises only if the database is unreachable.

    The set-based path of `accept_many`, for one message: under a webhook flood the ORM's unit of
    work was the web process's largest cost."""
    result = accept_many([msg])[0]
    log.info("message stored" if result.created else "message re-delivered",
             extra={"message_id": result.message_id, "channel": msg.channel})
    return result


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
    """Store a batch in one transaction, then queue the new ones in one round trip (pollers, imports).

    Set-based: one query for the messages already stored, one for the contacts, one multi-row
    insert for each. A re-delivery inside the page or of an earlier page is recognised as such."""
    if not msgs:
        return []
    with _writer(), session_scope() as session:
        results = _store_many(session, msgs)
    todo = list(dict.fromkeys(mid for mid, created, pending in results if created or pending))  # once per page
    queued = _try_enqueue(*todo) if todo else False
    return [Accepted(message_id=mid, created=created, queued=queued and (created or pending))
            for mid, created, pending in results]


def _store_many(session: Session, msgs: list[InboundMessage]) -> list[tuple[int, bool, bool]]:
    """(message id, created, to be queued) for each of `msgs`, in order (see _known_messages)."""
    m = Message.__table__  # type: ignore[attr-defined]
    keys = list(dict.fromkeys((x.channel, x.external_id) for x in msgs))
    known = _known_messages(session, keys)
    fresh: dict[tuple[str, str], InboundMessage] = {}
    for x in msgs:
        if (x.channel, x.external_id) not in known:
            fresh.setdefault((x.channel, x.external_id), x)
    contacts = _contacts(session, list(fresh.values()))
    now = utcnow()
    rows = [dict(direction="in", channel=x.channel, external_id=x.external_id,
                 contact_id=contacts[(x.channel, x.sender)], text=x.text, sender_display=x.sender_display,
                 attachments=[a.model_dump() for a in x.attachments],
                 location=x.location.model_dump() if x.location else None, in_reply_to=x.in_reply_to,
                 public=x.public, raw=x.raw, received_at=x.received_at, created_at=now, state="stored",
                 attempts=0) for x in fresh.values()]
    created: dict[tuple[str, str], int] = {}
    if rows:
        ins = insert_ignore(session, m, ["channel", "external_id"])
        created = {(c, e): i for i, c, e in session.execute(ins.returning(m.c.id, m.c.channel, m.c.external_id), rows)}
        lost = [k for k in fresh if k not in created]  # a concurrent delivery stored it a moment ago
        if lost:
            known.update(_known_messages(session, lost))
    out, seen = [], set()
    for x in msgs:
        k = (x.channel, x.external_id)
        if k in created and k not in seen:
            out.append((created[k], True, True))
        else:
            mid, pending = known[k] if k in known else (created[k], True)
            out.append((mid, False, pending))
        seen.add(k)
    return out


def _contacts(session: Session, msgs: list[InboundMessage]) -> dict[tuple[str, str], int]:
    """(channel, address) -> contact id, creating the missing ones; names and last-seen updated."""
    c = Contact.__table__  # type: ignore[attr-defined]
    latest: dict[tuple[str, str], InboundMessage] = {}
    for x in msgs:
        latest[(x.channel, x.sender)] = x
    if not latest:
        return {}
    found = _known_contacts(session, list(latest))
    missing = [k for k in latest if k not in found]
    if missing:
        now = utcnow()
        session.execute(insert_ignore(session, c, ["channel", "address"]),
                        [dict(channel=ch, address=ad, display_name=latest[(ch, ad)].sender_display, created_at=now,
                              opted_out=False, blocked=False) for ch, ad in missing])
        found.update(_known_contacts(session, missing))
    changes = [{"cid": found[k][0], "seen": x.received_at,
                "name": x.sender_display or found[k][1]} for k, x in latest.items()]
    session.execute(sa.update(c).where(c.c.id == sa.bindparam("cid")).values(
        last_inbound_at=sa.bindparam("seen"), display_name=sa.bindparam("name")), changes)
    return {k: v[0] for k, v in found.items()}


def _pairs_in(session: Session, col_a: Any, col_b: Any, keys: list[tuple[str, str]]) -> Any:
    """(a, b) among `keys`, as `a IN (...) AND b IN (...)` (the pairs are then checked in Python):
    both databases walk the unique (a, b) index with it, and SQLAlchemy expands two short lists far
    faster than a list of tuples, which cost the web process a third of its time per page."""
    return sa.and_(one_of(session, col_a, sorted({a for a, _ in keys})),
                   one_of(session, col_b, sorted({b for _, b in keys})))


REQUEUE_AFTER = timedelta(seconds=10)


def _known_messages(session: Session, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, bool]]:
    """(channel, external id) -> (message id, to be queued again) for those stored. A re-delivery of
    a message still waiting queues it again (its first queueing may have been lost with Redis),
    unless it was stored moments ago: then it is surely still in the inbox, and a second copy
    there would only have two workers race for it."""
    m = Message.__table__  # type: ignore[attr-defined]
    wanted, cutoff = set(keys), utcnow() - REQUEUE_AFTER
    rows = session.execute(sa.select(m.c.id, m.c.channel, m.c.external_id, m.c.state, m.c.created_at)
                           .where(_pairs_in(session, m.c.channel, m.c.external_id, keys)))
    return {(r.channel, r.external_id): (r.id, r.state == "stored" and r.created_at < cutoff) for r in rows
            if (r.channel, r.external_id) in wanted}


def _known_contacts(session: Session, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, str | None]]:
    c = Contact.__table__  # type: ignore[attr-defined]
    wanted = set(keys)
    rows = session.execute(sa.select(c.c.id, c.c.channel, c.c.address, c.c.display_name)
                           .where(_pairs_in(session, c.c.channel, c.c.address, keys)))
    return {(r.channel, r.address): (r.id, r.display_name) for r in rows if (r.channel, r.address) in wanted}


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
    from fastapi.responses import JSONResponse

    try:
        result = await _group_commit().submit(msg)
    except (OperationalError, InterfaceError) as exc:
        log.error("database unavailable, asking the provider to retry: %s", exc.__class__.__name__)
        return JSONResponse({"ok": False, "error": "temporarily unavailable, retry later"}, status_code=503)
    log.info("message stored" if result.created else "message re-delivered",  # in the request's log context
             extra={"message_id": result.message_id, "channel": msg.channel})
    return JSONResponse({"ok": True, "message_id": result.message_id, "duplicate": not result.created})


class _GroupCommit:
    """Webhooks arriving together are stored together: while one `accept_many` runs, the next
    requests wait for it and are then stored in one transaction and queued in one Redis round trip.
    Under a flood this replaces 32 threads taking turns at SQLite's single writer with one writer;
    a single webhook still goes straight through. A batch that fails is retried message by
    message, so one bad message cannot fail the others' requests; a database outage fails them all
    at once (503)."""

    MAX = 500

    def __init__(self) -> None:
        self.pending: list[tuple[InboundMessage, Any]] = []
        self.task: Any = None  # the drain storing what is pending; held here because the loop holds tasks weakly

    async def submit(self, msg: InboundMessage) -> Accepted:
        fut = asyncio.get_running_loop().create_future()
        self.pending.append((msg, fut))
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        while self.pending:
            batch, self.pending = self.pending[:self.MAX], self.pending[self.MAX:]
            await self._store(batch)

    async def _store(self, batch: list[tuple[InboundMessage, Any]]) -> None:
        try:
            results = await asyncio.to_thread(accept_many, [m for m, _ in batch])
        except Exception as exc:  # noqa: BLE001 - handed to the waiting request(s)
            if len(batch) > 1 and not isinstance(exc, (OperationalError, InterfaceError)):
                await asyncio.gather(*(self._store([one]) for one in batch))  # only the bad one's request fails
                return
            for _, fut in batch:  # the database is down: every request answers 503 at once
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_, fut), res in zip(batch, results):
            if not fut.done():  # the provider may have hung up; the message is stored anyway
                fut.set_result(res)


_GROUPS: "weakref.WeakKeyDictionary[Any, _GroupCommit]" = weakref.WeakKeyDictionary()


def _group_commit() -> _GroupCommit:
    """One group per event loop (the web process has one; tests may start several)."""
    loop = asyncio.get_running_loop()
    if loop not in _GROUPS:
        _GROUPS[loop] = _GroupCommit()
    return _GROUPS[loop]
