"""Replies that arrive once, self-service status, questions to the citizen, SLA clocks and escalation.

Real Redis, real workers, the fake Telegram API over loopback; a controllable clock for the SLA."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlmodel import select

from connectors.fakes import serve
from connectors.fakes.telegram import TelegramState, create_app as fake_app
from connectors.telegram import TelegramConnector
from core.intake import accept
from core.models import Message, Ticket

TOKEN, SECRET = "99:SLA-token", "sla-secret"
OFFICERS, HEAD, SUPERVISOR = -100111, -100222, -100333


@pytest.fixture
def tg(sqlite_hub):  # type: ignore[no-untyped-def]
    state = TelegramState(token=TOKEN)
    running = serve(fake_app(state))
    hub = sqlite_hub
    hub.mp.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    hub.mp.setenv("TELEGRAM_SECRET_TOKEN", SECRET)
    for opd in hub.raw["opds"]:
        if opd["code"] == "DSDABM":
            opd["officers"] = {"channel": "telegram", "address": str(OFFICERS)}
            opd["head"] = {"channel": "telegram", "address": str(HEAD)}
    hub.raw["sla"]["supervisor"] = {"channel": "telegram", "address": str(SUPERVISOR)}
    hub.configure(telegram={"enabled": True, "mode": "webhook", "api_base": running.url})
    yield hub, state
    running.stop()


def report(hub, state, chat: int, text: str):  # type: ignore[no-untyped-def]
    accept(TelegramConnector.parse(state.citizen_update(chat, text)))
    hub.run_worker()


def only_ticket(hub) -> Ticket:  # type: ignore[no-untyped-def]
    with hub.session() as s:
        return s.exec(select(Ticket)).one()


def test_status_self_service_answers_only_the_reporter(tg) -> None:  # type: ignore[no-untyped-def]
    hub, state = tg
    report(hub, state, 801, "Jalan berlubang dalam di Jl. Kenjeran dekat halte, sudah dua minggu")
    number = only_ticket(hub).number
    report(hub, state, 801, f"cek status {number}")
    reply = state.messages_to(801)[-1]["text"]
    assert number in reply and "diteruskan ke dinas terkait" in reply
    report(hub, state, 802, f"cek status {number}")  # someone else asks about it
    other = state.messages_to(802)[-1]["text"]
    assert "tidak ditemukan" in other and "Kenjeran" not in other
    report(hub, state, 801, "/status")  # Telegram command: the reporter's latest ticket
    assert number in state.messages_to(801)[-1]["text"]
    with hub.session() as s:
        assert len(s.exec(select(Ticket)).all()) == 1  # queries never open tickets


def test_answer_to_an_operator_question_lands_in_the_same_ticket(tg) -> None:  # type: ignore[no-untyped-def]
    from core.db import session_scope
    from core.queue import enqueue_outbound
    from core.replies import take_pending
    from core.selfservice import ask_citizen

    hub, state = tg
    report(hub, state, 803, "Lampu PJU mati di gang 5 Jl. Ngagel Jaya, gelap sekali malam hari")
    with session_scope() as s:
        ticket = s.get(Ticket, only_ticket(hub).id)
        ask_citizen(s, hub.cfg, ticket, "Tiang nomor berapa yang mati?", actor="operator1")
        pending = take_pending(s)
    for mid in pending:
        enqueue_outbound(mid)
    hub.run_worker()
    assert "Tiang nomor berapa" in state.messages_to(803)[-1]["text"]
    report(hub, state, 803, "tiang nomor 12 dan 13 pak")
    with hub.session() as s:
        tickets = s.exec(select(Ticket)).all()
        answer = s.exec(select(Message).where(Message.text == "tiang nomor 12 dan 13 pak")).one()
    assert len(tickets) == 1 and answer.ticket_id == tickets[0].id and answer.kind == "answer"
    assert tickets[0].awaiting_citizen_since is None and tickets[0].sla_paused_seconds >= 0


def test_breach_at_60_minutes_not_at_59_and_escalation_sent_once(tg) -> None:  # type: ignore[no-untyped-def]
    from core.db import session_scope
    from core.sla import clocks, sweep

    hub, state = tg
    report(hub, state, 804, "Got mampet di Jl. Rungkut Asri, air meluber ke jalan tiap hujan")
    t = only_ticket(hub)
    assert t.opd_code == "DSDABM" and t.routed_at is not None
    at59 = t.routed_at + timedelta(minutes=59)
    at60 = t.routed_at + timedelta(minutes=60)
    opd_clock = {c.name: c for c in clocks(hub.cfg, t, at59)}["opd_response"]
    assert not opd_clock.breached and opd_clock.ratio > 0.75
    assert {c.name: c for c in clocks(hub.cfg, t, at60)}["opd_response"].breached

    with session_scope() as s:  # at 59 minutes: a warning to the OPD's officers only
        sweep(s, hub.cfg, now=at59)
    hub_sent = lambda chat: [m["text"] for m in state.messages_to(chat)]  # noqa: E731
    with session_scope() as s:
        ids = sweep(s, hub.cfg, now=t.routed_at + timedelta(minutes=95))  # breach + 35 min: officers and head
    assert len(ids) == 2
    with session_scope() as s:  # a second sweeper, and the same sweeper after a restart: nothing new
        assert sweep(s, hub.cfg, now=t.routed_at + timedelta(minutes=95)) == []
    with session_scope() as s:
        assert sweep(s, hub.cfg, now=t.routed_at + timedelta(minutes=96)) == []
    from workers.jobs import sla_sweep  # the periodic job enqueues what the sweep created
    from core.queue import enqueue_outbound

    with hub.session() as s:
        pending = s.exec(select(Message.id).where(Message.delivery_state == "pending")).all()
    for mid in pending:
        enqueue_outbound(mid)
    hub.run_worker()
    assert len(hub_sent(OFFICERS)) == 2  # the warning, then the breach
    assert "Peringatan SLA" in hub_sent(OFFICERS)[0] and "SLA TERLAMPAUI" in hub_sent(OFFICERS)[1]
    assert len(hub_sent(HEAD)) == 1 and t.number in hub_sent(HEAD)[0]
    assert hub_sent(SUPERVISOR) == []  # the supervisor step comes at breach + 60 min
    assert sla_sweep is not None


def test_paused_clock_while_waiting_on_citizen(tg) -> None:  # type: ignore[no-untyped-def]
    from core.sla import clocks

    hub, state = tg
    report(hub, state, 805, "Trotoar ambles di depan SDN Kertajaya, bahaya untuk anak sekolah")
    t = only_ticket(hub)
    t.awaiting_citizen_since = t.routed_at + timedelta(minutes=10)
    c = {c.name: c for c in clocks(hub.cfg, t, t.routed_at + timedelta(minutes=65))}["opd_response"]
    assert not c.breached and abs(c.elapsed.total_seconds() - 600) < 1


def test_business_hours_calendar_skips_nights_weekends_and_holidays(sqlite_hub) -> None:  # type: ignore[no-untyped-def]
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from core.config import BusinessHours
    from core.sla import running_time

    cfg = sqlite_hub.cfg
    cfg.sla.business_hours = BusinessHours(enabled=True, start="08:00", end="16:00")
    wib = ZoneInfo("Asia/Jakarta")
    fri = datetime(2026, 11, 27, 15, 30, tzinfo=wib)
    mon = datetime(2026, 11, 30, 8, 45, tzinfo=wib)
    assert running_time(cfg, fri, mon) == timedelta(minutes=75)  # 30 min Friday + 45 min Monday
    eve = datetime(2026, 12, 24, 15, 0, tzinfo=wib)  # Christmas Day is a national holiday
    assert running_time(cfg, eve, datetime(2026, 12, 28, 9, 0, tzinfo=wib)) == timedelta(hours=2)


def test_rate_limit_then_success_sends_once(tg) -> None:  # type: ignore[no-untyped-def]
    hub, state = tg
    state.fail_next(429, "Too Many Requests: retry after 1", retry_after=1)
    report(hub, state, 806, "Sampah menumpuk di TPS Jl. Semolowaru belum diangkut")
    with hub.session() as s:
        out = s.exec(select(Message).where(Message.direction == "out")).one()
    assert out.delivery_state == "retry" and state.messages_to(806) == []
    from workers.jobs import send_outbound

    time.sleep(1.0)
    assert send_outbound(out.id, attempt=1)["state"] == "sent"
    assert send_outbound(out.id, attempt=2)["state"] == "skipped"  # a duplicate job sends nothing
    assert len(state.messages_to(806)) == 1


def test_crash_between_send_and_record_does_not_send_twice(tg) -> None:  # type: ignore[no-untyped-def]
    import core.replies as replies

    hub, state = tg

    def crash(*_a, **_k):  # type: ignore[no-untyped-def]
        raise SystemExit("worker killed after the provider accepted the message")

    accept(TelegramConnector.parse(state.citizen_update(807, "Pohon tumbang di Jl. Diponegoro menutup jalan")))
    real_finish = replies._finish
    replies._finish = crash  # the worker dies right after the provider call returned
    try:
        with pytest.raises(SystemExit):
            from core.db import session_scope
            from core.pipeline import process

            with session_scope() as s:
                outcome = process(s, hub.cfg, 1)
            replies.deliver(hub.cfg, outcome.outbound[0])
    finally:
        replies._finish = real_finish
    assert len(state.messages_to(807)) == 1  # the provider got it once
    from core.replies import reconcile_outbound

    assert reconcile_outbound(stale_sending=timedelta(0))["unconfirmed"] == 1
    assert replies.deliver(hub.cfg, outcome.outbound[0]).state == "skipped"
    hub.run_worker()
    assert len(state.messages_to(807)) == 1  # never re-sent blindly
    with hub.session() as s:
        out = s.exec(select(Message).where(Message.direction == "out")).one()
    assert out.delivery_state == "unconfirmed" and "check with the provider" in out.error


def test_per_chat_limit_spaces_messages_to_one_chat(tg) -> None:  # type: ignore[no-untyped-def]
    from core.ratelimit import acquire
    from core.redisconn import get_redis

    hub, _ = tg
    r = get_redis()
    assert acquire(r, [("telegram:chat:1", 1, 1.0)]) == 0
    wait = acquire(r, [("telegram:chat:1", 1, 1.0)])
    assert 0 < wait <= 1.0  # the second message in the same second waits
    assert acquire(r, [("telegram:chat:2", 1, 1.0)]) == 0  # another chat is not held up


def test_public_status_page_shows_progress_without_personal_data(tg) -> None:  # type: ignore[no-untyped-def]
    import httpx

    from core.web import create_app

    hub, state = tg
    report(hub, state, 808, "Saya Budi 081234567890, jalan depan rumah saya di Jl. Kalijudan 7 berlubang")
    number = only_ticket(hub).number
    running = serve(create_app(hub.cfg))
    try:
        page = httpx.get(f"{running.url}/status/{number}")
        missing = httpx.get(f"{running.url}/status/ADU-2026-999999")
        js = httpx.get(f"{running.url}/status/{number}.json").json()
    finally:
        running.stop()
    assert page.status_code == 200 and number in page.text and "Dinas Sumber Daya Air" in page.text
    assert "081234567890" not in page.text and "Budi" not in page.text and "Kalijudan" not in page.text
    assert missing.status_code == 404
    assert js["number"] == number and js["status"] == "diteruskan ke dinas terkait"


def test_sla_report_command(tg) -> None:  # type: ignore[no-untyped-def]
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT

    hub, state = tg
    report(hub, state, 809, "Saluran got mampet di Jl. Kapas Krampung, banjir tiap hujan")
    proc = subprocess.run([sys.executable, "-m", "core.cli", "sla", "report", "--json"], cwd=ROOT,
                          env=hub.env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert rows == [{"opd": "DSDABM", "tickets": 1, "within": 1.0, "median_response_min": None,
                     "p90_response_min": None, "median_feedback_h": None, "p90_feedback_h": None,
                     "open_breaches": 0}]
    bad = subprocess.run([sys.executable, "-m", "core.cli", "sla", "report", "--opd", "NOPE"], cwd=ROOT,
                         env=hub.env(), capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown OPD code" in bad.stderr


def test_resolution_is_told_to_every_reporter_of_a_merged_case(tg) -> None:  # type: ignore[no-untyped-def]
    from core.db import session_scope
    from core.queue import enqueue_outbound
    from core.replies import take_pending
    from core.tickets import TransitionError, set_status

    hub, state = tg
    report(hub, state, 810, "Banjir setinggi lutut di Jl. Dharmahusada karena saluran tersumbat")
    report(hub, state, 811, "jl dharmahusada kebanjiran lagi, gorong2 buntu")
    with session_scope() as s:
        first = s.exec(select(Ticket).order_by(Ticket.id)).first()
        for m in s.exec(select(Message).where(Message.direction == "in")).all():
            m.ticket_id = first.id  # one case with two reporters (deduplication usually merges them itself)
        with pytest.raises(TransitionError):
            set_status(s, hub.cfg, first, "rejected", actor="op", reason=" ")
        set_status(s, hub.cfg, first, "resolved", actor="op", response="Saluran sudah dibersihkan hari ini.")
        number = first.number
        pending = take_pending(s)
    for mid in pending:
        enqueue_outbound(mid)
    hub.run_worker()
    for chat in (810, 811):
        last = state.messages_to(chat)[-1]["text"]
        assert number in last and "Saluran sudah dibersihkan" in last and "selesai" in last
    with hub.session() as s:
        t = s.get(Ticket, first.id)
    assert t.status == "resolved" and t.resolved_at and t.feedback_at


def test_a_batch_of_acknowledgements_is_one_job_and_one_failure_does_not_stop_the_rest(tg, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A drain queues its acknowledgements as one outbound job (RQ's per-job cost once per batch);
    a reply that fails unexpectedly inside it goes on as its own job, and every citizen still gets
    exactly one answer."""
    import workers.jobs as jobs
    from core.intake import accept_many
    from core.queue import OUTBOUND, SEND_OUTBOUND, SEND_OUTBOUND_MANY, get_queue

    hub, state = tg
    chats = [811, 812, 813]
    texts = ["Sampah menumpuk di TPS Jl. Semolowaru belum diangkut", "Lampu PJU mati di gang 3 Jl. Kalijudan",
             "Pohon tumbang menutup Jl. Diponegoro, mohon dipotong"]
    accept_many([TelegramConnector.parse(state.citizen_update(c, t)) for c, t in zip(chats, texts)])
    jobs.drain_inbound()
    queued = get_queue(OUTBOUND).get_jobs()
    assert [j.func_name for j in queued] == [SEND_OUTBOUND_MANY]
    ids = queued[0].args[0]
    assert len(ids) == 3
    real, broken = jobs.deliver, ids[1]

    def deliver(cfg, mid):  # type: ignore[no-untyped-def]
        if mid == broken:
            raise RuntimeError("disk full while rendering")
        return real(cfg, mid)

    monkeypatch.setattr(jobs, "deliver", deliver)
    get_queue(OUTBOUND).empty()
    assert jobs.send_outbound_many(ids) == {"sent": 2, "requeued": 1}
    assert [j.func_name for j in get_queue(OUTBOUND).get_jobs()] == [SEND_OUTBOUND]
    monkeypatch.setattr(jobs, "deliver", real)
    hub.run_worker()
    assert [len(state.messages_to(c)) for c in chats] == [1, 1, 1]
