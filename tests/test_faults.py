"""Faults survived on real processes: a worker killed mid-job, Redis lost under load, the database
down, and a poison message parked and replayed. Nothing lost, nothing answered twice."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import httpx
import pytest
import redis
from rq.registry import FailedJobRegistry, StartedJobRegistry
from sqlmodel import select

from connectors.fakes import serve
from connectors.fakes.telegram import TelegramState, create_app as fake_app
from connectors.telegram import TelegramConnector
from core.intake import accept, reconcile
from core.models import Message, Ticket
from tests.conftest import ROOT
from tests.services import free_port

TOKEN, SECRET = "55:FAULT-token", "fault-secret"


@pytest.fixture
def tg(sqlite_hub):  # type: ignore[no-untyped-def]
    state = TelegramState(token=TOKEN)
    running = serve(fake_app(state))
    sqlite_hub.mp.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    sqlite_hub.mp.setenv("TELEGRAM_SECRET_TOKEN", SECRET)
    sqlite_hub.raw["queue"] = {"inbound_retry_delays": [0, 0]}
    sqlite_hub.configure(telegram={"enabled": True, "mode": "webhook", "api_base": running.url})
    yield sqlite_hub, state
    running.stop()


def counts(hub) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    with hub.session() as s:
        return len(s.exec(select(Ticket)).all()), len(s.exec(select(Message).where(Message.direction == "in")).all())


def test_worker_killed_mid_job_processes_the_message_once(tg, wait_for) -> None:  # type: ignore[no-untyped-def]
    from core.queue import get_queue

    hub, state = tg
    accept(TelegramConnector.parse(state.citizen_update(901, "Lampu jalan mati total di Jl. Tenggilis Mejoyo")))
    db_path = hub.database_url.removeprefix("sqlite:///")
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the worker's claim will block on this lock, mid-job
    worker = subprocess.Popen([sys.executable, "-m", "core.cli", "worker", "--name", "doomed"], cwd=ROOT,
                              env=hub.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        registry = StartedJobRegistry("inbound", connection=get_queue("inbound").connection)
        wait_for(lambda: registry.get_job_ids(), timeout=30)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    with hub.session() as s:
        assert s.exec(select(Message)).one().state == "stored"  # the killed transaction left no trace
    assert reconcile(older_than=__import__("datetime").timedelta(0)) == 1
    hub.run_worker()
    reconcile(older_than=__import__("datetime").timedelta(0))  # a second reconcile finds nothing to do
    hub.run_worker()
    assert counts(hub) == (1, 1)
    assert len(state.messages_to(901)) == 1


def test_redis_lost_under_load_loses_and_duplicates_nothing(sqlite_hub, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from core.web import create_app

    port = free_port()
    def start_redis() -> subprocess.Popen:  # noqa: E306
        p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
        for _ in range(200):
            try:
                if redis.Redis(port=port).ping():
                    return p
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError("redis did not start")

    server = start_redis()
    state = TelegramState(token=TOKEN)
    fake = serve(fake_app(state))
    hub = sqlite_hub
    hub.mp.setenv("REDIS_URL", f"redis://127.0.0.1:{port}/0")
    hub.mp.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    hub.mp.setenv("TELEGRAM_SECRET_TOKEN", SECRET)
    hub.configure(telegram={"enabled": True, "mode": "webhook", "api_base": fake.url})
    web = serve(create_app(hub.cfg))
    state.webhook = {"url": f"{web.url}/webhooks/telegram", "secret_token": SECRET}
    try:
        for i in range(40):
            if i == 20:
                server.terminate()
                server.wait(timeout=10)  # Redis goes away, with the queue it held
            update = state.citizen_update(1000 + i, f"sampah menumpuk di TPS RW {i} belum diangkut seminggu")
            assert state.deliver(update).status_code == 200  # webhooks keep accepting
        assert counts(hub) == (0, 40)
        server = start_redis()
        assert reconcile(older_than=__import__("datetime").timedelta(0)) == 40
        hub.run_worker()
        reconcile(older_than=__import__("datetime").timedelta(0))
        hub.run_worker()
    finally:
        web.stop()
        fake.stop()
        server.terminate()
    assert counts(hub) == (40, 40)
    assert all(len(state.messages_to(1000 + i)) == 1 for i in range(40))


def test_database_down_answers_503_so_the_provider_retries(tg, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from core.web import create_app

    hub, state = tg
    app = create_app(hub.cfg)
    running = serve(app)
    try:
        monkeypatch.setenv("DATABASE_URL", f"postgresql://nobody@127.0.0.1:{free_port()}/gone")
        update = state.citizen_update(902, "air PDAM mati")
        resp = httpx.post(f"{running.url}/webhooks/telegram", json=update,
                          headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}, timeout=30)
        ready = httpx.get(f"{running.url}/readyz", timeout=30)
    finally:
        running.stop()
    assert resp.status_code == 503 and "retry" in resp.json()["error"]
    assert ready.status_code == 503 and ready.json()["database"] is False


def test_poison_message_is_parked_visible_and_replayable(tg) -> None:  # type: ignore[no-untyped-def]
    from core.db import session_scope
    from core.queue import get_queue
    from workers.jobs import replay_failed

    hub, state = tg
    msg = TelegramConnector.parse(state.citizen_update(903, "pohon tumbang di depan balai RW"))
    res = accept(msg)
    with session_scope() as s:
        s.get(Message, res.message_id).location = {"lon": 112.7}  # corrupt: no latitude
    hub.run_worker()
    with hub.session() as s:
        parked = s.get(Message, res.message_id)
    assert parked.state == "failed" and parked.attempts == 3 and "KeyError" in parked.error
    failed = FailedJobRegistry("inbound", connection=get_queue("inbound").connection)
    assert f"in-{res.message_id}" in failed.get_job_ids()
    proc = subprocess.run([sys.executable, "-m", "core.cli", "jobs", "failed"], cwd=ROOT, env=hub.env(),
                          capture_output=True, text=True, timeout=60)
    assert "KeyError" in proc.stdout and "telegram:903:" in proc.stdout
    with session_scope() as s:  # the fix
        s.get(Message, res.message_id).location = {"lat": -7.29, "lon": 112.7}
    assert replay_failed() == 1
    hub.run_worker()
    assert counts(hub) == (1, 1) and len(state.messages_to(903)) == 1
