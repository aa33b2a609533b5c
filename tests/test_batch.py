"""Batched processing: many messages per job behave exactly as one at a time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlmodel import select

from core.intake import accept_many
from core.message import InboundMessage
from core.models import Event, Message, Ticket

FLOOD = ["Banjir setinggi lutut di Jl. Dharmahusada depan RS, saluran got tersumbat sampah",
         "jl dharmahusada banjir lagi min, got depan rumah sakit buntu",
         "Dharmahusada kebanjiran, air dari got meluber ke jalan depan RS",
         "banjir di jalan dharmahusada dekat rumah sakit, gorong2 mampet",
         "Tolong got di Jl. Dharmahusada depan RS dibersihkan, banjir terus"]
OTHERS = ["Lampu PJU mati di gang 3 Jl. Kalijudan sudah seminggu",
          "Sampah menumpuk di TPS Keputih belum diangkut tiga hari",
          "Air PDAM mati sejak pagi di Kelurahan Ketintang",
          "Pohon tumbang menutup Jl. Diponegoro, mohon dipotong",
          "Ada ular kobra masuk rumah warga di Rungkut, tolong damkar"]


def test_one_batch_with_five_reports_of_one_flood_makes_one_case(hub) -> None:  # type: ignore[no-untyped-def]
    t0 = datetime(2026, 11, 20, 1, 0, tzinfo=timezone.utc)
    msgs = [InboundMessage(channel="telegram", external_id=f"b{i}", sender=f"citizen-{i}", text=text,
                           received_at=t0 + timedelta(minutes=i)) for i, text in enumerate(FLOOD + OTHERS)]
    results = accept_many(msgs)
    assert all(r.created and r.queued for r in results)
    again = accept_many(msgs[:3])  # a poller handing over the same page again
    assert not any(r.created for r in again)
    hub.run_worker()  # one drain job takes the whole batch
    with hub.session() as s:
        tickets = s.exec(select(Ticket)).all()
        states = {m.state for m in s.exec(select(Message).where(Message.direction == "in")).all()}
        acks = s.exec(select(Message).where(Message.direction == "out")).all()
    flood = [t for t in tickets if t.reporters > 1]
    assert states == {"processed"}
    assert len(flood) == 1 and flood[0].reporters == 5 and flood[0].opd_code == "DSDABM"
    assert len(tickets) == 1 + len(OTHERS)
    assert len(acks) == 10 and len({a.reply_to_id for a in acks}) == 10  # every reporter answered once


def _stream(prefix: str, shift: timedelta) -> list[InboundMessage]:
    """The benchmark's realistic stream (re-deliveries, repeats, many reporters of one problem),
    with its own senders and ids, moved in time so two copies never meet in deduplication."""
    import random

    from core.bench import generate

    out = []
    for m in generate(400, random.Random(11), datetime(2026, 6, 1, tzinfo=timezone.utc)):
        out.append(InboundMessage.model_validate({
            **m, "external_id": f"{prefix}{m['external_id']}", "sender": f"{prefix}{m['sender']}",
            "received_at": datetime.fromisoformat(m["received_at"]) + shift}))
    return out


def _what_happened(s, ids: list[int]) -> list[tuple]:  # type: ignore[no-untyped-def]
    """Per message: kind, OPD, the templates of its replies, which earlier message opened its ticket,
    and what the dedup record and the events say (their fields)."""
    rows = {m.id: m for m in s.exec(select(Message).where(Message.id.in_(ids)))}
    opener: dict[int, int] = {}
    out = []
    for pos, mid in enumerate(ids):
        m = rows[mid]
        t = s.get(Ticket, m.ticket_id) if m.ticket_id else None
        replies = sorted(r.template for r in s.exec(select(Message).where(Message.reply_to_id == mid)))
        events = sorted((e.action, sorted(e.data or {})) for e in s.exec(select(Event).where(Event.message_id == mid)))
        first = opener.setdefault(m.ticket_id, pos) if m.ticket_id else None
        out.append((m.state, m.kind, t.opd_code if t else None, t.reporters if t else None, replies, first,
                    sorted(m.dedup or {}), events))
    return out


def test_bulk_path_decides_exactly_like_one_message_at_a_time(hub, caplog) -> None:  # type: ignore[no-untyped-def]
    """The set-based batch path (core.batch) and the one-at-a-time path (core.pipeline) give every
    message the same fate: same tickets, same merges and repeats, same reporters, same replies."""
    from core.batch import process_batch
    from core.config import get_config
    from core.db import session_scope
    from core.pipeline import process_each

    cfg = get_config()
    one = accept_many(_stream("one-", timedelta(0)))
    bulk = accept_many(_stream("bulk-", timedelta(days=120)))
    ids_one = list(dict.fromkeys(a.message_id for a in one))
    ids_bulk = list(dict.fromkeys(a.message_id for a in bulk))
    for i in range(0, len(ids_one), 50):
        with session_scope() as s:
            outcomes, failures = process_each(s, cfg, ids_one[i:i + 50])
            assert not failures
        with session_scope() as s:
            outcomes, failures = process_batch(s, cfg, ids_bulk[i:i + 50])
            assert not failures and len(outcomes) == len(ids_bulk[i:i + 50])
    assert "batch path failed" not in caplog.text  # the bulk path did the work, not its fallback
    with hub.session() as s:
        a, b = _what_happened(s, ids_one), _what_happened(s, ids_bulk)
    assert sum(1 for x in a if x[1] == "case") >= 5 and sum(1 for x in a if x[1] == "repeat") >= 5
    assert a == b


def test_a_message_another_worker_took_first_leaves_the_rest_of_the_batch_in_bulk(hub, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The same id can sit in two workers' batches (a provider re-delivered a message still waiting).
    When the other worker claims it first, this batch is redone without it, still in bulk: nothing
    is processed twice, the rest is not sent down the slow one-at-a-time path, and only the
    deduplication decisions are made again (they may depend on what the other worker wrote)."""
    import core.batch as batch
    from core.db import session_scope
    from core.pipeline import process

    t0 = datetime(2026, 11, 21, 1, 0, tzinfo=timezone.utc)
    ids = [r.message_id for r in accept_many([InboundMessage(channel="sms", external_id=f"l{i}", sender=f"+62811{i}",
                                                             text=text, received_at=t0 + timedelta(minutes=i))
                                              for i, text in enumerate(OTHERS)])]
    real_plan, one_at_a_time, raced = batch._plan, [], []

    def plan(session, cfg, items):  # type: ignore[no-untyped-def]
        if not raced:  # the other worker commits ids[2] between this batch's reads and its claim
            raced.append(ids[2])
            with session_scope() as other:
                process(other, cfg, ids[2])
        return real_plan(session, cfg, items)

    def each(session, cfg, todo, decisions=None):  # type: ignore[no-untyped-def]
        one_at_a_time.extend(todo)
        return real_each(session, cfg, todo, decisions)

    def prepare(cfg, rows, decisions):  # type: ignore[no-untyped-def]
        prepared.append(len(rows))
        return real_prepare(cfg, rows, decisions)

    real_each, real_prepare, prepared = batch.process_each, batch._prepare, []
    monkeypatch.setattr(batch, "_plan", plan)
    monkeypatch.setattr(batch, "process_each", each)
    monkeypatch.setattr(batch, "_prepare", prepare)
    with session_scope() as session:
        outcomes, failures = batch.process_batch(session, hub.cfg, ids)
    assert sorted(o.message_id for o in outcomes) == sorted(set(ids) - {ids[2]}) and not failures
    assert one_at_a_time == []
    assert prepared == [len(ids)]  # the redo reuses classification, places and features
    with hub.session() as s:
        rows = s.exec(select(Message).where(Message.direction == "in")).all()
        acks = s.exec(select(Message).where(Message.direction == "out")).all()
    assert {m.state for m in rows} == {"processed"}
    assert sorted(a.reply_to_id for a in acks) == sorted(ids)  # each answered once, ids[2] by the other worker


def test_a_redelivery_moments_later_is_not_queued_twice_but_a_late_one_is(hub) -> None:  # type: ignore[no-untyped-def]
    """A provider re-delivering a message still waiting does not put a second copy in the inbox
    (two workers would race for it); one arriving after the first could have been lost with Redis
    queues it again, without waiting for the reconciler."""
    from sqlalchemy import update

    from core.queue import INBOX
    from core.redisconn import get_redis

    m = InboundMessage(channel="telegram", external_id="r-1", sender="5571", text=OTHERS[0],
                       received_at=datetime(2026, 11, 21, 1, 0, tzinfo=timezone.utc))
    first = accept_many([m])[0]
    again = accept_many([m, m])  # moments later, and twice in one page
    assert first.created and first.queued and [a.created or a.queued for a in again] == [False, False]
    assert get_redis().lrange(INBOX, 0, -1) == [str(first.message_id).encode()]
    with hub.session() as s:
        s.execute(update(Message).where(Message.id == first.message_id).values(
            created_at=datetime.now(timezone.utc) - timedelta(minutes=1)))
        s.commit()
    late = accept_many([m])[0]
    assert not late.created and late.queued and get_redis().llen(INBOX) == 2


def test_reports_taken_one_at_a_time_in_one_transaction_are_all_indexed(hub, caplog) -> None:  # type: ignore[no-untyped-def]
    """The one-at-a-time path judges a report against the cases opened earlier in the same
    transaction (not yet in the index); judging them must not change what is then written to the
    index, or a later report of the flood would find nothing."""
    from core.db import session_scope
    from core.dedup import backend
    from core.pipeline import process_each

    t0 = datetime(2026, 11, 21, 3, 0, tzinfo=timezone.utc)
    ids = [r.message_id for r in accept_many([InboundMessage(channel="sms", external_id=f"o{i}", sender=f"+62813{i}",
                                                             text=text, received_at=t0 + timedelta(minutes=i))
                                              for i, text in enumerate(FLOOD[:3])])]
    with session_scope() as session:
        outcomes, failures = process_each(session, hub.cfg, ids)
    assert not failures and len({o.ticket for o in outcomes}) == 1
    assert "could not index" not in caplog.text
    with session_scope() as session:
        be = backend(session, hub.cfg)
        written = be.written_between(0, be.seq() + 1)
    assert set(ids) <= set(written)  # every report of the case is there for the next lookup


def test_a_batch_sees_the_slow_index_write_of_the_previous_batch(hub, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """However slowly a batch's index write goes, the next batch's lookups come after it: five
    reports of one flood taken two at a time still make one case, and the drain returns only once
    everything it processed can be matched."""
    import time

    from core import dedup_store
    from workers import jobs

    slow = dedup_store.RedisBackend.add_many

    def add_many(self, docs):  # type: ignore[no-untyped-def]
        time.sleep(0.4)  # much longer than reading and classifying the next two messages
        return slow(self, docs)

    monkeypatch.setattr(dedup_store.RedisBackend, "add_many", add_many)
    monkeypatch.setattr(jobs, "BATCH", 2)
    t0 = datetime(2026, 11, 22, 5, 0, tzinfo=timezone.utc)
    accept_many([InboundMessage(channel="telegram", external_id=f"s{i}", sender=f"slow-{i}", text=text,
                                received_at=t0 + timedelta(minutes=i)) for i, text in enumerate(FLOOD)])
    hub.run_worker()
    with hub.session() as s:
        tickets = s.exec(select(Ticket)).all()
    assert [t.reporters for t in tickets] == [5]
    late = accept_many([InboundMessage(channel="sms", external_id="s-late", sender="+6281399",
                                       text=FLOOD[0], received_at=t0 + timedelta(minutes=9))])
    hub.run_worker()
    with hub.session() as s:
        assert s.get(Message, late[0].message_id).ticket_id == tickets[0].id  # the last batch was indexed too


def test_a_backlog_invites_one_idle_worker_at_a_time_not_one_per_batch(hub, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A drain that takes a full batch queues a drain for an idle worker to join in; while that one
    waits, further full batches add no more (each would run later, find the inbox empty, and cost
    a job). Once it starts, the next full batch may invite another."""
    from core.queue import INBOUND, get_queue
    from workers import jobs

    monkeypatch.setattr(jobs, "BATCH", 2)
    t0 = datetime(2026, 11, 23, 5, 0, tzinfo=timezone.utc)
    q = get_queue(INBOUND)
    accept_many([InboundMessage(channel="sms", external_id=f"h{i}", sender=f"+6281377{i}", text=OTHERS[i % 5],
                                received_at=t0 + timedelta(minutes=i)) for i in range(10)])
    q.empty()  # intake queued the first drain; run one by hand instead
    assert jobs.drain_inbound() == {"processed": 10}
    assert q.count == 1  # five full batches, one helper invited
    q.empty()
    accept_many([InboundMessage(channel="sms", external_id=f"h2-{i}", sender=f"+6281378{i}", text=OTHERS[i % 5],
                                received_at=t0 + timedelta(hours=1, minutes=i)) for i in range(4)])
    q.empty()
    assert jobs.drain_inbound() == {"processed": 4}
    assert q.count == 1  # the helper that was waiting was dropped with the queue; a new one was invited


def test_a_drain_that_loses_redis_after_a_commit_still_indexes_the_committed_batch(hub, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The batch is committed before the worker takes its next one; if Redis fails right then, the
    job fails (RQ retries it), but the committed reports still reach the index for later lookups."""
    import pytest
    import redis

    from core import queue
    from core.db import session_scope
    from core.dedup import backend
    from workers import jobs

    t0 = datetime(2026, 11, 24, 5, 0, tzinfo=timezone.utc)
    ids = [r.message_id for r in accept_many([InboundMessage(
        channel="telegram", external_id=f"r{i}", sender=f"lost-{i}", text=text, received_at=t0 + timedelta(minutes=i))
        for i, text in enumerate(FLOOD[:2] + OTHERS[:2])])]
    real_pop, calls = queue.pop_inbound, []

    def pop(batch: int) -> list[int]:
        calls.append(batch)
        if len(calls) > 1:
            raise redis.ConnectionError("Redis went away")
        return real_pop(batch)

    monkeypatch.setattr(queue, "pop_inbound", pop)
    with pytest.raises(redis.ConnectionError):
        jobs.drain_inbound()
    with hub.session() as s:
        assert {s.get(Message, i).state for i in ids} == {"processed"}
    with session_scope() as session:
        be = backend(session, hub.cfg)
        written = be.written_between(0, be.seq() + 1)
    assert {ids[0], ids[2], ids[3]} <= set(written)  # the flood's case and the two others: all indexed
