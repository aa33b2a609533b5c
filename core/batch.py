"""A worker's batch of stored messages, processed with set-based database work.

`core.pipeline.process` handles one message with the ORM: clear, but about twenty statements per
message. Under a flood most messages are plain complaints from citizens the hub is not already
talking to, so this module takes those through the same decisions (classify, locate, repeat of
the sender's own report, case of another reporter, new ticket, acknowledgement) with a handful of
statements per *batch*: reads first, outside the write transaction, then one burst of bulk writes
(claim, tickets, messages, events, replies) so SQLite's single writer lock is held only briefly.

Anything unusual goes through `core.pipeline.process` one message at a time, in order: a blocked
or flooding sender, a status query, an e-Musrenbang conversation, an answer the operators wait
for, a reply in a thread. If the bulk path fails for any reason, its savepoint is rolled back and
the same messages go through the one-at-a-time path, which isolates a poison message.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlmodel import Session

from core import dedup
from core.civic_models import ProposalDraft
from core.classify import Decision, get_classifier
from core.config import AppConfig
from core.batch_dedup import Item, deduplicate, indexed
from core.db import one_of
from core.models import Contact, Event, Message, Ticket, utcnow
from core.pipeline import Outcome, locate, opd_name, process_each, ticket_number
from core.replies import outbound_row, upsert_outbound
from core.selfservice import status_query

log = logging.getLogger(__name__)
M, T = Message.__table__, Ticket.__table__  # type: ignore[attr-defined]


class _Lost(Exception):
    """Another worker claimed one of the batch's messages first (the same id queued twice, e.g. by a
    provider's re-delivery of a message still waiting): redo the batch without it."""


def process_batch(session: Session, cfg: AppConfig, ids: list[int],
                  retries: int = 2) -> tuple[list[Outcome], dict[int, Exception]]:
    """Process the stored messages among `ids` inside `session` (the caller commits).
    Returns (outcomes, failures); a failed message is rolled back alone and retried by the caller."""
    rows = session.execute(select(M).where(one_of(session, M.c.id, ids), M.c.state == "stored").order_by(M.c.id)).all()
    if not rows:
        return [], {}
    fast, slow = _split(session, cfg, rows)
    decisions = dict(zip([r.id for r in rows], get_classifier(cfg).classify_many(
        [r.text or "" for r in rows], [r.channel for r in rows])))
    items: list[Item] = []
    try:
        items = _prepare(cfg, fast, decisions)  # the CPU work, before the transaction reads
    except Exception as exc:  # noqa: BLE001 - e.g. a malformed location: one at a time isolates it
        _fallback(exc, len(fast), 0.0)
        slow, fast = sorted(slow + fast, key=lambda r: r.id), []
    outcomes: list[Outcome] = []
    while fast:
        t0 = time.monotonic()
        try:
            plan = _plan(session, cfg, items)  # reads and decisions, before the write transaction
            t0 = time.monotonic()
            with session.begin_nested():
                outcomes = _write(session, cfg, *plan)
            break
        except Exception as exc:  # noqa: BLE001 - the one-at-a-time path isolates the culprit
            session.rollback()  # nothing else was written yet: let go of SQLite's write lock
            if isinstance(exc, _Lost) and retries:  # the rest still in bulk, not one at a time
                retries -= 1
                items = _without_taken(session, items)  # classification and features still hold
                fast = [it.row for it in items]
                continue
            if not isinstance(exc, _Lost):
                _fallback(exc, len(fast), time.monotonic() - t0)
            slow, fast = sorted(slow + [it.row for it in items], key=lambda r: r.id), []
    more, failures = process_each(session, cfg, [r.id for r in slow], decisions)
    return outcomes + more, failures


def _without_taken(session: Session, items: list[Item]) -> list[Item]:
    """The batch again, less the messages another worker took meanwhile, with only the per-message
    work kept (classification, place, features): what deduplication decided depended on them."""
    ids = [it.row.id for it in items]
    stored = set(session.execute(select(M.c.id).where(one_of(session, M.c.id, ids), M.c.state == "stored")).scalars())
    return [Item(row=it.row, decision=it.decision, place=it.place, feats=it.feats, opd=it.opd, names=it.names)
            for it in items if it.row.id in stored]


def _fallback(exc: Exception, n: int, seconds: float) -> None:
    log.warning("batch path failed after %.1f s (%s: %s); processing %d message(s) one at a time",
                seconds, type(exc).__name__, str(exc)[:200], n)


def _split(session: Session, cfg: AppConfig, rows: list[Any]) -> tuple[list[Any], list[Any]]:
    """(plain messages, messages needing the one-at-a-time path). All of a sender's messages go the
    same way, so their order is kept."""
    contacts = {r.contact_id for r in rows if r.contact_id is not None}
    odd = {c for c, blocked in session.execute(
        select(Contact.id, Contact.blocked).where(one_of(session, Contact.id, contacts))) if blocked}
    odd |= set(session.execute(select(ProposalDraft.contact_id).where(one_of(session, ProposalDraft.contact_id, contacts))).scalars())
    odd |= set(session.execute(
        select(M.c.contact_id).join(T, T.c.id == M.c.ticket_id)
        .where(one_of(session, M.c.contact_id, contacts), M.c.direction == "in", T.c.awaiting_citizen_since.is_not(None),
               T.c.status.in_(("new", "routed", "responded")))).scalars())
    first = min(r.received_at for r in rows) - timedelta(minutes=1)
    last = max(r.received_at for r in rows)
    odd |= {c for c, n in session.execute(
        select(M.c.contact_id, func.count()).where(one_of(session, M.c.contact_id, contacts), M.c.direction == "in",
                                                    M.c.received_at > first, M.c.received_at <= last)
        .group_by(M.c.contact_id)) if n >= cfg.flood.max_per_minute}
    for r in rows:
        text = (r.text or "").strip()
        if r.contact_id is None or r.in_reply_to or text.startswith("/") or status_query(text)[0]:
            odd.add(r.contact_id)
    fast = [r for r in rows if r.contact_id not in odd]
    return fast, [r for r in rows if r.contact_id in odd]


def _prepare(cfg: AppConfig, rows: list[Any], decisions: dict[int, Decision]) -> list[Item]:
    """Place, deduplication features and lookup buckets of each complaint: CPU only."""
    items = [Item(row=r) for r in rows]
    for it in items:
        it.decision = d = decisions[it.row.id]
        if d.complaint:
            it.place = locate(it.row)
            it.feats = dedup.features_of(it.row, it.place)
            it.opd = d.opd or d.candidate or "-"
    dedup.band_ids_many(cfg, [it.feats for it in items if it.feats is not None])  # one numpy pass per batch
    for it in items:
        if it.feats is not None:
            it.names = dedup.lookup_buckets(cfg, it.feats, it.opd)
    return items


def _plan(session: Session, cfg: AppConfig, items: list[Item]) -> tuple[list[Item], list[Item], list[Item]]:
    """Decide everything with reads only: (items, the complaints among them, those opening tickets).
    On SQLite a transaction that reads and then writes fails if another worker wrote in between,
    so nothing here writes and the writes that follow start with the claim."""
    complaints = [it for it in items if it.decision.complaint]  # type: ignore[union-attr]
    new_tickets: list[Item] = []
    if complaints:
        deduplicate(session, cfg, complaints, new_tickets)
    return items, complaints, new_tickets


def _write(session: Session, cfg: AppConfig, items: list[Item], complaints: list[Item],
           new_tickets: list[Item]) -> list[Outcome]:
    """Every write of the batch, first the claim (which takes SQLite's write lock)."""
    now = utcnow()
    _claim(session, [it.row for it in items])
    ticket_ids = _insert_tickets(session, cfg, new_tickets, now)
    dedup.opened(session, ticket_ids)
    for it in complaints:
        if it.new is not None:
            it.ticket = ticket_ids[it.new]
        if it.match is not None:
            it.match.ticket_id = it.ticket  # type: ignore[assignment]
    numbers = _numbers(session, complaints)
    _update_messages(session, items, numbers, now)
    _count_reporters(session, complaints, now)
    _insert_events(session, items, numbers, now)
    _queue_replies(session, cfg, complaints, numbers)
    dedup.remember_many(session, cfg, [(it.row, it.feats, it.opd, it.index_names) for it in complaints
                                       if indexed(it)])
    return [_outcome(it, numbers) for it in items]


def _claim(session: Session, rows: list[Any]) -> None:
    """The first write of the transaction: take every message of the batch, or none."""
    ids = [r.id for r in rows]
    res = session.execute(update(M).where(one_of(session, M.c.id, ids), M.c.state == "stored").values(state="processing"))
    if res.rowcount != len(ids):
        raise _Lost()


def _insert_tickets(session: Session, cfg: AppConfig, items: list[Item], now: datetime) -> list[int]:
    if not items:
        return []
    values = []
    for it in items:
        d, p, r = it.decision, it.place, it.row
        assert d is not None and p is not None
        values.append(dict(
            channel=r.channel, contact_id=r.contact_id, subject=(r.text or "")[:200], opd_code=d.opd,
            status="routed" if d.opd else "new", triage=d.triage, confidence=d.confidence,
            model_version=d.model_version, reasons=d.reasons, kecamatan=p.kecamatan, kelurahan=p.kelurahan,
            street=p.street, landmark=p.landmark, place_key=p.key(), lat=p.lat, lon=p.lon, reporters=1,
            created_at=r.received_at, routed_at=r.received_at if d.opd else None, updated_at=now,
            sla_paused_seconds=0))
    if session.get_bind().dialect.name == "sqlite":
        return _insert_tickets_sqlite(session, cfg, items, values)
    res = session.execute(insert(T).returning(T.c.id, T.c.created_at, sort_by_parameter_order=True), values)
    rows = res.all()
    numbers = [{"tid": tid, "number": ticket_number(cfg, tid, created)} for tid, created in rows]
    session.execute(update(T).where(T.c.id == bindparam("tid")).values(number=bindparam("number")), numbers)
    return [tid for tid, _ in rows]


def _insert_tickets_sqlite(session: Session, cfg: AppConfig, items: list[Item], values: list[dict]) -> list[int]:
    """One executemany with the ids (and so the numbers) chosen here. The claim came first, so this
    transaction holds SQLite's only write lock and nobody else can take them. (With RETURNING in
    parameter order SQLAlchemy has no sentinel on SQLite and inserted the rows one by one.)"""
    first = (session.execute(select(func.max(T.c.id))).scalar() or 0) + 1
    ids = list(range(first, first + len(values)))
    for tid, v, it in zip(ids, values, items):
        v["id"], v["number"] = tid, ticket_number(cfg, tid, it.row.received_at)
    session.execute(insert(T), values)
    return ids


def _update_messages(session: Session, items: list[Item], numbers: dict[int, tuple], now: datetime) -> None:
    params = []
    for it in items:
        kind = it.kind if it.decision.complaint else "non_complaint"  # type: ignore[union-attr]
        params.append({"mid": it.row.id, "kind": kind, "ticket_id": it.ticket, "dedup": _dedup_record(it, numbers),
                       "at": now})
    session.execute(update(M).where(M.c.id == bindparam("mid")).values(
        state="processed", processed_at=bindparam("at"), kind=bindparam("kind"), ticket_id=bindparam("ticket_id"),
        dedup=bindparam("dedup")), params)


def _dedup_record(it: Item, numbers: dict[int, tuple]) -> dict[str, Any] | None:
    """What deduplication decided, as the one-at-a-time path records it on the message and its event."""
    if it.match is None:
        return None
    return {"kind": it.kind, "ticket": numbers[it.ticket][0], "score": it.match.score, **it.match.reasons}  # type: ignore[index]


def _count_reporters(session: Session, items: list[Item], now: datetime) -> None:
    """A case joined by someone new to it counts one more reporter; every joined ticket is touched."""
    joined = [it for it in items if it.match is not None]
    if not joined:
        return
    tickets = {it.ticket for it in joined}
    seen = {(t, c) for t, c in session.execute(
        select(M.c.ticket_id, M.c.contact_id).where(one_of(session, M.c.ticket_id, tickets), M.c.direction == "in",
                                                     M.c.id.not_in([it.row.id for it in joined]))).all()}
    seen |= {(it.ticket, it.row.contact_id) for it in items if it.opened}
    extra: dict[int, int] = dict.fromkeys(tickets, 0)
    for it in joined:
        if it.kind == "case" and (it.ticket, it.row.contact_id) not in seen:
            extra[it.ticket] += 1  # type: ignore[index]
        seen.add((it.ticket, it.row.contact_id))
    session.execute(update(T).where(T.c.id == bindparam("tid")).values(
        reporters=T.c.reporters + bindparam("n"), updated_at=bindparam("at")),
        [{"tid": t, "n": n, "at": now} for t, n in extra.items()])


def _insert_events(session: Session, items: list[Item], numbers: dict[int, tuple], now: datetime) -> None:
    events = []
    for it in items:
        d, mid = it.decision, it.row.id
        assert d is not None
        if not d.complaint:
            events.append(dict(at=now, actor="worker", action="message.non_complaint", ticket_id=None,
                               message_id=mid, data=None))
        elif it.opened:
            events.append(dict(at=now, actor="worker", action="ticket.created", ticket_id=it.ticket, message_id=mid,
                               data={"opd": d.opd, "confidence": d.confidence, "reasons": d.reasons,
                                     "triage": d.triage, "model": d.model_version}))
        else:
            events.append(dict(at=now, actor="worker", action=f"dedup.{it.kind}", ticket_id=it.ticket, message_id=mid,
                               data=_dedup_record(it, numbers)))
    if events:
        session.execute(insert(Event.__table__), events)  # type: ignore[attr-defined]


def _numbers(session: Session, items: list[Item]) -> dict[int, tuple[str, str | None, str]]:
    """ticket id -> (number, OPD, status) for every ticket the batch touched."""
    ids = {it.ticket for it in items if it.ticket is not None}
    return {r.id: (r.number, r.opd_code, r.status) for r in session.execute(
        select(T.c.id, T.c.number, T.c.opd_code, T.c.status).where(one_of(session, T.c.id, ids)))} if ids else {}


def _queue_replies(session: Session, cfg: AppConfig, items: list[Item], numbers: dict[int, tuple]) -> None:
    """One acknowledgement per new ticket; at most one "already reported" per contact and ticket."""
    contacts = {it.row.contact_id for it in items}
    muted = {c.id: c.opted_out_reason or "contact opted out or blocked" for c in session.execute(
        select(Contact.id, Contact.opted_out_reason).where(one_of(session, Contact.id, contacts), Contact.opted_out)).all()}
    rows, owner = [], {}
    for it in items:
        number, code, _ = numbers[it.ticket]  # type: ignore[index]
        if it.opened:
            template, key = ("ack" if code else "ack_triage"), None
        else:
            template = "duplicate_joined" if it.kind == "case" else "repeat"
            key = f"{template}:{it.ticket}:{it.row.contact_id}"
        out = outbound_row(cfg, it.row, template, key, muted.get(it.row.contact_id), ticket_id=it.ticket,
                           ticket=number, opd=opd_name(cfg, code))
        if out["external_id"] not in owner:
            owner[out["external_id"]] = it
            rows.append(out)
    for external_id, mid in upsert_outbound(session, rows).items():
        owner[external_id].outbound.append(mid)


def _outcome(it: Item, numbers: dict[int, tuple]) -> Outcome:
    r = it.row
    out = Outcome(message_id=r.id, channel=r.channel, external_id=r.external_id, outbound=it.outbound)
    if not it.decision.complaint:  # type: ignore[union-attr]
        out.kind = out.status = "non_complaint"
        return out
    out.ticket, out.opd, out.status = numbers[it.ticket]  # type: ignore[index]
    if it.match is not None:
        out.duplicate_of, out.kind = out.ticket, it.kind
    return out
