"""Deduplication, as citizens and operators see it: one case per real problem, every reporter
answered once on their own channel, never a merge across OPDs or across distinct problems.

Real Redis (the shared index and the per-OPD lock), SQLite and PostgreSQL, real RQ workers
(in-process and as separate `aduan worker` processes), the real Telegram client against the
fake Bot API, and the stable `aduan ingest` / `aduan eval dedup` / `aduan bench dedup` commands.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlmodel import select

from core.message import InboundMessage
from core.models import Event, Message, Ticket
from tests.dedup_stream import generate
from tests.test_telegram import fake_telegram, telegram_hub, web  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc)
FLOOD = [
    "Jalan Ahmad Yani depan RSI banjir setinggi lutut, motor pada mogok",
    "min jl a yani depan rsi banjir parah, mobil gak bisa lewat",
    "banjir lagi di Jl. Ahmad Yani depan RSI, air got meluap ke jalan",
    "A Yani banjir rek, banyune sak dengkul, got e mampet",
    "tolong Jalan Ahmad Yani tergenang banjir, saluran mampet #Surabaya",
    "@sapawargasby jalan ahmad yani kebanjiran depan RSI, gorong2 buntu",
    "genangan air di jalan ahmad yani dekat RSI tidak surut2, motor mogok",
    "lapor min, banjir setinggi betis di jln ahmad yani arah waru",
]


def msg(channel: str, ext: str, sender: str, text: str, at: datetime, **extra) -> InboundMessage:  # type: ignore[no-untyped-def]
    return InboundMessage(channel=channel, external_id=ext, sender=sender, text=text, received_at=at, **extra)


def feed(hub, messages: list[InboundMessage], notify: bool = True) -> list:  # type: ignore[no-untyped-def]
    """Store and process each message in its own transaction, as a worker does."""
    from core.db import session_scope
    from core.intake import store
    from core.pipeline import process

    outs = []
    for m in messages:
        with session_scope() as s:
            row, _ = store(s, m)
            outs.append(process(s, hub.cfg, row.id, notify=notify))
    return outs


def tickets(hub) -> list[Ticket]:  # type: ignore[no-untyped-def]
    with hub.session() as s:
        return list(s.exec(select(Ticket).order_by(Ticket.id)).all())


def replies(hub) -> list[Message]:  # type: ignore[no-untyped-def]
    with hub.session() as s:
        return list(s.exec(select(Message).where(Message.direction == "out").order_by(Message.id)).all())


# ------------------------------------------------------------------ many reporters, one problem


def test_forty_reporters_of_one_flood_make_one_ticket_each_answered_once(hub, fake_telegram, web):  # type: ignore[no-untyped-def]  # noqa: F811
    chats = [5560000 + i for i in range(40)]
    for i, chat in enumerate(chats):
        update = fake_telegram.citizen_update(chat, FLOOD[i % len(FLOOD)])
        assert fake_telegram.deliver(update).status_code == 200
    hub.run_worker()

    [ticket] = tickets(hub)
    assert ticket.opd_code == "DSDABM" and ticket.reporters == 40
    for n, chat in enumerate(chats):
        sent = fake_telegram.messages_to(chat)
        assert len(sent) == 1, f"chat {chat} got {len(sent)} messages"
        assert ticket.number in sent[0]["text"]
        if n:  # later reporters hear that the problem is already being handled
            assert "sudah dilaporkan warga lain" in sent[0]["text"]
    with hub.session() as s:
        joined = s.exec(select(Message).where(Message.kind == "case")).all()
        events = s.exec(select(Event).where(Event.action == "dedup.case")).all()
    assert len(joined) == 39 and len(events) == 39
    for m in joined:  # every automatic merge says why
        assert m.dedup["ticket"] == ticket.number and m.dedup["problem_terms"] and "similarity" in m.dedup
        assert m.dedup.get("place_terms") or m.dedup.get("kelurahan") or m.dedup.get("similarity", 0) >= 0.6


def test_reports_on_every_channel_join_one_case_and_each_reporter_is_answered_on_their_channel(sqlite_hub):  # type: ignore[no-untyped-def]
    channels = ["telegram", "sms", "whatsapp", "twitter", "instagram"]
    batch = [msg(ch, f"{ch}-{i}", f"{ch}-user-{i}", FLOOD[i], T0 + timedelta(minutes=7 * i))
             for i, ch in enumerate(channels)]
    outs = feed(sqlite_hub, batch)
    [ticket] = tickets(sqlite_hub)
    assert ticket.reporters == 5
    assert [o.duplicate_of for o in outs] == [None] + [ticket.number] * 4
    with sqlite_hub.session() as s:
        inbound = {m.contact_id: m.channel for m in s.exec(select(Message).where(Message.direction == "in")).all()}
    out = replies(sqlite_hub)
    assert sorted(m.contact_id for m in out) == sorted(inbound)  # one reply per reporter
    for m in out:
        assert m.channel == inbound[m.contact_id] and ticket.number in m.text
    assert [m.template for m in out] == ["ack"] + ["duplicate_joined"] * 4


def test_same_sender_repeating_joins_their_ticket_with_one_repeat_notice(sqlite_hub):  # type: ignore[no-untyped-def]
    text = "Lampu PJU di Jl. Rungkut Madya gang 5 mati sudah 3 hari, gelap sekali"
    batch = [msg("telegram", "r1", "777", text, T0),
             msg("telegram", "r2", "777", text, T0 + timedelta(minutes=20)),
             msg("telegram", "r3", "777", "min lampu pju rungkut madya gg 5 masih mati, tolong", T0 + timedelta(hours=5))]
    outs = feed(sqlite_hub, batch)
    [ticket] = tickets(sqlite_hub)
    assert ticket.reporters == 1
    assert [o.kind for o in outs] == ["complaint", "repeat", "repeat"]
    assert [m.template for m in replies(sqlite_hub)] == ["ack", "repeat"]  # at most one "we already have this"


def test_repeat_after_the_window_or_after_resolution_is_a_new_ticket(sqlite_hub):  # type: ignore[no-untyped-def]
    text = "sampah menumpuk di TPS Jalan Kenjeran tidak diangkut, bau sekali"
    feed(sqlite_hub, [msg("sms", "w1", "+628111", text, T0),
                      msg("whatsapp", "w2", "+628222", text, T0 + timedelta(days=15))])  # beyond 14 days
    assert len(tickets(sqlite_hub)) == 2


# ------------------------------------------------------------------ never across problems or OPDs


def test_pothole_and_dead_street_light_on_one_street_are_two_tickets(sqlite_hub):  # type: ignore[no-untyped-def]
    outs = feed(sqlite_hub, [
        msg("telegram", "p1", "101", "Jalan Kertajaya depan pasar berlubang besar, banyak motor jatuh", T0),
        msg("sms", "p2", "+62812", "Lampu PJU di Jalan Kertajaya depan pasar mati, gelap sekali", T0 + timedelta(hours=1)),
        msg("whatsapp", "p3", "+62813", "jl kertajaya dekat pasar aspalnya bolong2, bahaya", T0 + timedelta(hours=2)),
        msg("twitter", "p4", "warga4", "lampu jalan kertajaya depan pasar padam semua min", T0 + timedelta(hours=3)),
    ])
    ts = tickets(sqlite_hub)
    assert len(ts) == 2 and {t.opd_code for t in ts} == {"DSDABM"}
    assert outs[2].duplicate_of == outs[0].ticket and outs[3].duplicate_of == outs[1].ticket
    assert outs[0].ticket != outs[1].ticket


def test_same_wording_at_another_street_is_another_case(sqlite_hub):  # type: ignore[no-untyped-def]
    text = "sampah menumpuk sudah seminggu tidak diangkut di TPS {}, baunya menyengat"
    feed(sqlite_hub, [msg("telegram", "s1", "201", text.format("Jalan Keputih"), T0),
                      msg("telegram", "s2", "202", text.format("Jalan Wonorejo"), T0 + timedelta(hours=1))])
    assert len(tickets(sqlite_hub)) == 2


def test_same_text_for_two_opds_is_never_merged(sqlite_hub):  # type: ignore[no-untyped-def]
    from core.classify import Decision
    from core.db import session_scope
    from core.intake import store
    from core.pipeline import process

    text = "lampu di perempatan Jalan Diponegoro mati, gelap dan semrawut"
    for n, opd in enumerate(["DISHUB", "DSDABM"]):  # the same words, routed to two OPDs
        with session_scope() as s:
            row, _ = store(s, msg("telegram", f"o{n}", f"30{n}", text, T0 + timedelta(minutes=n)))
            process(s, sqlite_hub.cfg, row.id, notify=True, decision=Decision(opd=opd, confidence=0.9))
    ts = tickets(sqlite_hub)
    assert sorted(t.opd_code for t in ts) == ["DISHUB", "DSDABM"]
    # and a traffic light and a street light at one crossing, classified by the hub itself
    feed(sqlite_hub, [msg("sms", "o3", "+6281", "lampu lalu lintas di perempatan Jemursari mati, macet", T0),
                      msg("sms", "o4", "+6282", "lampu PJU di perempatan Jemursari mati, gelap", T0 + timedelta(hours=1))])
    assert len(tickets(sqlite_hub)) == 4


# ------------------------------------------------------------------ re-delivery and races


def _workers(hub, n: int) -> None:  # type: ignore[no-untyped-def]
    """n real `aduan worker --burst` processes started together; wait for all."""
    procs = [subprocess.Popen([sys.executable, "-m", "core.cli", "worker", "--burst", "--name", f"w{i}-{os.getpid()}"],
                              cwd=ROOT, env=hub.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for i in range(n)]
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out.decode(errors="replace")[-2000:]


def test_redelivered_message_raced_by_two_workers_makes_one_record_and_one_reply(hub, fake_telegram):  # type: ignore[no-untyped-def]  # noqa: F811
    telegram_hub(hub, fake_telegram)
    from core.intake import accept
    from core.queue import enqueue_inbound

    m = msg("telegram", "9001", "5570001", "pipa PDAM bocor di Jalan Dukuh Kupang, air muncrat", T0)
    first, again = accept(m), accept(m)  # the provider re-delivers the webhook
    assert first.created and not again.created
    for _ in range(3):  # and the job is queued more than once
        enqueue_inbound(first.message_id)
    _workers(hub, 2)
    with hub.session() as s:
        assert len(s.exec(select(Message).where(Message.direction == "in")).all()) == 1
    assert len(tickets(hub)) == 1
    assert len(replies(hub)) == 1 and len(fake_telegram.messages_to(5570001)) == 1


def test_two_workers_racing_on_two_reports_of_one_new_problem_make_one_case(hub, fake_telegram):  # type: ignore[no-untyped-def]  # noqa: F811
    telegram_hub(hub, fake_telegram)
    from core.intake import accept

    for i in range(6):
        accept(msg("telegram", f"92{i}", str(5580000 + i), FLOOD[i], T0 + timedelta(seconds=i)))
    _workers(hub, 2)
    [ticket] = [t for t in tickets(hub) if t.status != "closed"]  # a racing duplicate is merged into it
    assert ticket.reporters == 6
    assert sum(len(fake_telegram.messages_to(5580000 + i)) for i in range(6)) == 6


@pytest.fixture
def pg_hub(tmp_path, pg_server, redis_server, monkeypatch):  # type: ignore[no-untyped-def]
    """PostgreSQL: two workers' write transactions really overlap there."""
    from tests.conftest import _create_pg_database, _hub

    yield from _hub(tmp_path, _create_pg_database(pg_server), redis_server, monkeypatch)


@pytest.mark.parametrize("a_reported_first", [True, False])
def test_two_workers_opening_one_new_problem_at_the_same_moment_end_as_one_case(pg_hub, a_reported_first):  # type: ignore[no-untyped-def]
    """Worker A has looked up and opened a ticket but not committed when worker B takes another report
    of the same flood: B cannot see A's case and opens its own. A commits last, finds B's case among
    the index writes it could not see, and, as if the reports had come one at a time, the later
    report's ticket joins the earlier one's case (whichever worker took it). The later reporter asking
    for the number they were given is answered about the case."""
    from core.batch import process_batch
    from core.db import session_scope
    from core.dedup_race import settle
    from core.intake import accept

    at_a, at_b = (T0, T0 + timedelta(seconds=5)) if a_reported_first else (T0 + timedelta(seconds=5), T0)
    a = accept(msg("sms", "ra", "+628111", FLOOD[0], at_a)).message_id
    b = accept(msg("sms", "rb", "+628222", FLOOD[2], at_b)).message_id
    with session_scope() as sa:
        [out_a], _ = process_batch(sa, pg_hub.cfg, [a])
        with session_scope() as sb:
            [out_b], _ = process_batch(sb, pg_hub.cfg, [b])
        assert settle(sb, pg_hub.cfg) == 0  # B wrote first: nothing it could have missed
        assert out_a.ticket != out_b.ticket
    assert settle(sa, pg_hub.cfg) == 1
    (case, later_sender), merged = ((out_a, "+628222"), out_b) if a_reported_first else ((out_b, "+628111"), out_a)
    live = [t for t in tickets(pg_hub) if t.status != "closed"]
    assert [t.number for t in live] == [case.ticket] and live[0].reporters == 2
    with pg_hub.session() as s:
        ev = s.exec(select(Event).where(Event.action == "dedup.merge")).one()
        assert ev.actor == "worker" and ev.data["source_number"] == merged.ticket
    accept(msg("sms", "rc", later_sender, f"cek status {merged.ticket}", T0 + timedelta(minutes=5)))
    pg_hub.run_worker()
    with pg_hub.session() as s:
        answer = s.exec(select(Message).where(Message.direction == "out", Message.template == "status")).one()
    assert case.ticket in answer.text


def test_settling_refused_by_a_busy_sqlite_is_tried_again(sqlite_hub, monkeypatch, caplog):  # type: ignore[no-untyped-def]
    """SQLite refuses a write whose transaction read before another worker's commit ("database is
    locked" at once, whatever the busy timeout). The merge rolled back whole, so settling tries it
    again instead of leaving the two tickets apart."""
    import sqlite3
    from types import SimpleNamespace

    from sqlalchemy.exc import OperationalError

    import core.dedup_race as race

    calls: list[int] = []

    def flaky(cfg, written):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) < fails:
            raise OperationalError("UPDATE message SET ticket_id=?", {}, sqlite3.OperationalError("database is locked"))
        return 1

    monkeypatch.setattr(race, "_settle", flaky)
    monkeypatch.setattr(race.time, "sleep", lambda s: None)
    written = race.Written(backend=None, seen=3, seq=9, docs=[], opened={1})
    for fails, merged, tries in ((2, 1, 2), (race.SETTLE_ATTEMPTS + 1, 0, race.SETTLE_ATTEMPTS)):
        calls.clear()
        assert race.settle(SimpleNamespace(info={race.SETTLE: written}), sqlite_hub.cfg) == merged
        assert len(calls) == tries
    assert "could not settle" in caplog.text  # given up only after the last attempt, and said so


# ------------------------------------------------------------------ operators


def test_operator_merge_split_and_undo(sqlite_hub):  # type: ignore[no-untyped-def]
    from core.db import session_scope
    from core.dedup import examples, merge, split, unmerge
    from core.dedup_ops import DedupError

    outs = feed(sqlite_hub, [
        msg("telegram", "m1", "401", "pohon tumbang di Jalan Diponegoro menutup jalan", T0),
        msg("sms", "m2", "+62840", "ada pohon roboh di jl diponegoro, kabel ikut ketarik", T0 + timedelta(hours=1)),
        msg("whatsapp", "m3", "+62841", "pohon besar tumbang di perempatan Jalan Pemuda", T0 + timedelta(hours=2)),
    ])
    a, b = (t.id for t in tickets(sqlite_hub))
    assert outs[1].duplicate_of == outs[0].ticket
    with session_scope() as s:
        ev = merge(s, b, a, actor="operator1", reason="pohon yang sama")
        ev_id = ev.id
    ta, tb = tickets(sqlite_hub)
    assert ta.reporters == 3 and tb.status == "closed"
    with session_scope() as s:
        unmerge(s, ev_id, actor="operator1")
    ta, tb = tickets(sqlite_hub)
    assert ta.reporters == 2 and tb.status == "routed" and tb.reporters == 1
    with session_scope() as s:
        joined = s.exec(select(Message).where(Message.external_id == "m2")).one()
        new = split(s, joined.id, actor="operator1", reason="lokasi beda")
        new_number = new.number
    with sqlite_hub.session() as s:
        moved = s.exec(select(Message).where(Message.external_id == "m2")).one()
        assert s.get(Ticket, moved.ticket_id).number == new_number
        assert s.get(Ticket, a).reporters == 1
        labels = examples(s)
    assert any(x["label"] == 0 and x["source"] == "operator1" and x["seen"]["problem_terms"] for x in labels)
    with session_scope() as s, pytest.raises(DedupError):
        split(s, s.exec(select(Message).where(Message.external_id == "m1")).one().id, actor="op")
    # A later report of the split-out problem joins the new ticket, not the old one.
    [later] = feed(sqlite_hub, [msg("sms", "m4", "+62840", "pohon roboh di jl diponegoro kabel ketarik masih belum", T0 + timedelta(hours=3))])
    assert later.ticket == new_number


# ------------------------------------------------------------------ commands


def _cli(hub, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    return subprocess.run([sys.executable, "-m", "core.cli", *args], cwd=ROOT, env=hub.env(), input=stdin,
                          capture_output=True, text=True, timeout=300)


def _write(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    return path


def test_ingest_inline_reports_duplicate_of_across_separate_runs(sqlite_hub, tmp_path):  # type: ignore[no-untyped-def]
    sqlite_hub.mp.delenv("REDIS_URL")  # --inline needs no Redis: the index is rebuilt from the database
    lines = [json.loads(msg("sms", f"i{i}", f"+6285{i}", FLOOD[i], T0 + timedelta(minutes=i)).to_json())
             for i in range(4)]
    r1 = _cli(sqlite_hub, "ingest", "--file", str(_write(tmp_path / "a.jsonl", lines[:2])), "--inline", "--json")
    assert r1.returncode == 0, r1.stderr
    first = [json.loads(x) for x in r1.stdout.splitlines()]
    assert first[0]["duplicate_of"] is None and first[1]["duplicate_of"] == first[0]["ticket"]
    r2 = _cli(sqlite_hub, "ingest", "--file", str(_write(tmp_path / "b.jsonl", lines[2:])), "--inline", "--json")
    second = [json.loads(x) for x in r2.stdout.splitlines()]
    assert [x["duplicate_of"] for x in second] == [first[0]["ticket"]] * 2
    # The hub then goes live on Redis: a new report joins the imported case.
    sqlite_hub.mp.setenv("REDIS_URL", sqlite_hub.redis_url)
    from tests.conftest import reset_caches

    reset_caches()
    [live] = feed(sqlite_hub, [msg("telegram", "live-1", "999", FLOOD[5], T0 + timedelta(hours=2))])
    assert live.duplicate_of == first[0]["ticket"]
    [t] = tickets(sqlite_hub)
    assert t.reporters == 5


def test_eval_dedup_scores_a_synthetic_stream_on_a_fresh_database(sqlite_hub, tmp_path):  # type: ignore[no-untyped-def]
    stream = _write(tmp_path / "stream.jsonl", generate(seed=3, cases=30))
    before = sorted(p.name for p in sqlite_hub.data_dir.iterdir())
    r = _cli(sqlite_hub, "eval", "dedup", str(stream), "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["messages"] == len(stream.read_text().splitlines())
    assert report["cross_opd_merges"] == 0
    assert report["bcubed_f1"] >= 0.93 and report["bcubed_precision"] >= 0.95, report
    assert report["tickets"] < report["messages"] * 0.6  # duplicates were folded
    assert sorted(p.name for p in sqlite_hub.data_dir.iterdir()) == before  # the hub's own data untouched
    table = _cli(sqlite_hub, "eval", "dedup", str(stream))
    assert "bcubed f1" in table.stdout and "cross-OPD merges" in table.stdout


def test_eval_dedup_names_bad_lines(sqlite_hub, tmp_path):  # type: ignore[no-untyped-def]
    good = json.loads(msg("sms", "e1", "+62", "jalan berlubang di Jalan Pemuda", T0).to_json())
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({**good, "case": "a"}) + "\n" + json.dumps(good) + "\n{oops\n", encoding="utf-8")
    r = _cli(sqlite_hub, "eval", "dedup", str(path), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["messages"] == 1
    assert "line 2: no ground-truth `case` field" in r.stderr and "line 3" in r.stderr
    path.write_text("{oops\n", encoding="utf-8")
    r = _cli(sqlite_hub, "eval", "dedup", str(path))
    assert r.returncode == 1 and "no usable lines" in r.stderr


def test_bench_dedup_lookup_beats_brute_force_and_finds_its_matches(sqlite_hub):  # type: ignore[no-untyped-def]
    r = _cli(sqlite_hub, "bench", "dedup", "--sizes", "3000", "--queries", "60", "--json")
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout.splitlines()[-1])
    assert row["stored"] == 3000 and row["index_mb"] > 0
    assert row["lookup_p50_ms"] < row["brute_p50_ms"]
    assert row["index_found_brute_matches"] >= 0.8
    bad = _cli(sqlite_hub, "bench", "dedup", "--sizes", "ten")
    assert bad.returncode == 2 and "--sizes" in bad.stderr


def test_band_ids_of_a_whole_batch_equal_datasketch_per_report() -> None:
    """The index must keep matching reports indexed before: band ids computed for a batch at once
    (cached one-word signatures, one numpy pass) are exactly datasketch's MinHash, report by report."""
    import random

    from datasketch import MinHash

    from core.bench import texts
    from core.lsh import band_keys, signature, word_bands_many
    from core.normalise import tokens

    sets = [frozenset(tokens(t)) for t in random.Random(3).sample(texts(), 300)] + [frozenset(), frozenset({"got"})]
    got = word_bands_many(sets, 64, 21, 3)
    for words, ids in zip(sets, got):
        m = MinHash(num_perm=64, seed=1)
        m.update_batch([w.encode() for w in sorted(words)])
        assert (signature(words, 64) == m.hashvalues).all()
        assert ids == (tuple(band_keys(m.hashvalues, 21, 3)) if len(words) >= 2 else None)
