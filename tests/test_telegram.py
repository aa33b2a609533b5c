"""Telegram end to end: the real python-telegram-bot against a fake Bot API on 127.0.0.1,
the hub's real web app over HTTP, real Redis, a real RQ worker, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlmodel import select

from connectors.fakes import serve
from connectors.fakes.telegram import TelegramState, create_app as fake_app
from connectors.telegram import TelegramConnector
from core.models import Message, Ticket
from tests.contract import ConnectorContract

TOKEN = "123456:TEST-token"
SECRET = "s3cret-Token_1"


@pytest.fixture
def fake_telegram():  # type: ignore[no-untyped-def]
    state = TelegramState(token=TOKEN)
    running = serve(fake_app(state))
    state.url = running.url  # type: ignore[attr-defined]
    yield state
    running.stop()


def telegram_hub(hub, fake, mode: str = "webhook"):  # type: ignore[no-untyped-def]
    hub.mp.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    hub.mp.setenv("TELEGRAM_SECRET_TOKEN", SECRET)
    hub.configure(telegram={"enabled": True, "mode": mode, "api_base": fake.url})
    return hub


@pytest.fixture
def web(hub, fake_telegram):  # type: ignore[no-untyped-def]
    """The hub's web app served over real HTTP, with the webhook registered at the fake Telegram."""
    from core.web import create_app

    telegram_hub(hub, fake_telegram)
    running = serve(create_app(hub.cfg))
    from core.channels import get_connector

    asyncio.run(get_connector(hub.cfg, "telegram").set_webhook(f"{running.url}/webhooks/telegram"))
    yield running
    running.stop()


def _stored(hub) -> list[Message]:  # type: ignore[no-untyped-def]
    with hub.session() as s:
        return list(s.exec(select(Message).where(Message.direction == "in")).all())


def test_citizen_message_becomes_routed_ticket_and_acknowledgement(hub, fake_telegram, web):  # type: ignore[no-untyped-def]
    update = fake_telegram.citizen_update(5550001, "Lampu PJU di Jl. Rungkut Asri Timur mati sudah seminggu, gelap sekali",
                                          first_name="Siti")
    resp = fake_telegram.deliver(update)
    assert resp.status_code == 200
    stored = _stored(hub)
    assert len(stored) == 1 and stored[0].state == "stored"  # persisted before the provider got "OK"

    hub.run_worker()

    with hub.session() as s:
        tickets = s.exec(select(Ticket)).all()
    assert len(tickets) == 1
    ticket = tickets[0]
    assert ticket.opd_code == "DSDABM" and ticket.status == "routed"
    assert ticket.number.startswith("ADU-20")
    sent = fake_telegram.messages_to(5550001)
    assert len(sent) == 1
    assert ticket.number in sent[0]["text"] and "Dinas Sumber Daya Air dan Bina Marga" in sent[0]["text"]
    assert sent[0]["reply_to_message"]["message_id"] == update["message"]["message_id"]
    with hub.session() as s:
        out = s.exec(select(Message).where(Message.direction == "out")).one()
    assert out.delivery_state == "sent" and out.provider_id == f"5550001:{sent[0]['message_id']}"


def test_redelivered_update_creates_nothing_and_sends_nothing(hub, fake_telegram, web):  # type: ignore[no-untyped-def]
    update = fake_telegram.citizen_update(5550002, "sampah di TPS Keputih belum diangkut tiga hari, bau sekali")
    assert fake_telegram.deliver(update).status_code == 200
    hub.run_worker()
    again = fake_telegram.deliver(update)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    hub.run_worker()
    with hub.session() as s:
        assert len(s.exec(select(Ticket)).all()) == 1
    assert len(_stored(hub)) == 1
    assert len(fake_telegram.messages_to(5550002)) == 1


def test_a_flood_of_concurrent_webhooks_is_stored_once_each(hub, fake_telegram, web):  # type: ignore[no-untyped-def]
    """Concurrent webhooks share commits (group commit); each still gets its own answer, a
    re-delivery sent in the same instant is recognised, and each citizen is acknowledged once."""
    from concurrent.futures import ThreadPoolExecutor

    updates = [fake_telegram.citizen_update(5560000 + i, f"lampu jalan mati di gang {i} Jl. Kalijudan sudah seminggu")
               for i in range(40)]
    sends = updates + updates[:10]  # ten provider re-deliveries racing their originals
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    with ThreadPoolExecutor(max_workers=25) as pool:
        answers = list(pool.map(lambda u: httpx.post(f"{web.url}/webhooks/telegram", json=u, headers=headers,
                                                     timeout=30), sends))
    assert [a.status_code for a in answers] == [200] * len(sends)
    ids = [a.json()["message_id"] for a in answers]
    assert ids[40:] == ids[:10]  # a re-delivery answers with the id of the stored original
    assert sum(not a.json()["duplicate"] for a in answers) == 40
    assert len(_stored(hub)) == 40
    hub.run_worker()
    assert all(len(fake_telegram.messages_to(5560000 + i)) == 1 for i in range(40))


def test_one_failing_webhook_in_a_crowd_does_not_fail_the_others(hub, fake_telegram, web, monkeypatch):  # type: ignore[no-untyped-def]
    """Group commit stores concurrent webhooks in shared transactions; when a shared transaction
    fails because of one message, the others are stored alone and answered 200, and only the
    culprit's request fails (Telegram delivers it again later)."""
    from concurrent.futures import ThreadPoolExecutor

    import core.intake as intake

    sizes: list[int] = []
    real = intake._store_many

    def store_many(session, msgs):  # type: ignore[no-untyped-def]
        sizes.append(len(msgs))
        if any(m.sender == "5570013" for m in msgs):
            raise ValueError("this contact's row is corrupt")  # a fault in one message's data
        return real(session, msgs)

    monkeypatch.setattr(intake, "_store_many", store_many)
    updates = [fake_telegram.citizen_update(5570000 + i, f"sampah menumpuk di gang {i} Jl. Kalijudan") for i in range(30)]
    with ThreadPoolExecutor(max_workers=30) as pool:
        answers = list(pool.map(lambda u: httpx.post(f"{web.url}/webhooks/telegram", json=u, timeout=30,
                                                     headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}), updates))
    assert [a.status_code for a in answers] == [500 if i == 13 else 200 for i in range(30)]
    assert sorted(m.external_id for m in _stored(hub)) == sorted(
        f"{u['message']['chat']['id']}:{u['message']['message_id']}" for i, u in enumerate(updates) if i != 13)
    assert max(sizes) > 1  # requests did share transactions


def test_wrong_secret_token_is_refused_and_nothing_stored(hub, fake_telegram, web):  # type: ignore[no-untyped-def]
    update = fake_telegram.citizen_update(5550003, "jalan berlubang")
    for headers in ({"X-Telegram-Bot-Api-Secret-Token": "wrong"}, {}):
        resp = httpx.post(f"{web.url}/webhooks/telegram", json=update, headers=headers)
        assert resp.status_code == 403
    assert _stored(hub) == []


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"update_id": "x"}',
                                  b'{"update_id": 5, "message": {"text": "no chat"}}'])
def test_malformed_body_is_400_and_nothing_stored(hub, fake_telegram, web, body):  # type: ignore[no-untyped-def]
    resp = httpx.post(f"{web.url}/webhooks/telegram", content=body,
                      headers={"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"})
    assert resp.status_code == 400
    assert _stored(hub) == []


def test_long_polling_stores_each_update_once_across_restarts(sqlite_hub, fake_telegram):  # type: ignore[no-untyped-def]
    hub = telegram_hub(sqlite_hub, fake_telegram, mode="polling")
    from core.channels import get_connector

    connector = get_connector(hub.cfg, "telegram")
    fake_telegram.citizen_update(5550004, "air PDAM mati sejak pagi di Kelurahan Ketintang")
    fake_telegram.citizen_update(5550005, "parkir liar di depan pasar bikin macet")

    def poll_until(n: int) -> None:
        stop = asyncio.Event()

        async def main() -> None:
            task = asyncio.create_task(connector.run(stop))
            for _ in range(200):
                if len(_stored(hub)) >= n:
                    break
                await asyncio.sleep(0.05)
            stop.set()
            await task

        asyncio.run(main())

    poll_until(2)
    assert len(_stored(hub)) == 2
    fake_telegram.citizen_update(5550004, "tolong segera ya min")
    poll_until(3)  # a restarted poller continues from the stored offset
    texts = sorted(m.text for m in _stored(hub))
    assert len(texts) == 3 and len(set(texts)) == 3


def test_acknowledgement_retried_after_rate_limit(sqlite_hub, fake_telegram):  # type: ignore[no-untyped-def]
    hub = telegram_hub(sqlite_hub, fake_telegram)
    from core.intake import accept

    update = fake_telegram.citizen_update(5550006, "ada ular masuk rumah warga tolong damkar")
    accept(TelegramConnector.parse(update))
    fake_telegram.fail_next(429, "Too Many Requests: retry after 1", retry_after=1)
    hub.run_worker()
    assert fake_telegram.messages_to(5550006) == []
    with hub.session() as s:
        out = s.exec(select(Message).where(Message.direction == "out")).one()
    assert out.delivery_state == "retry" and "rate limit" in (out.error or "")


class TestTelegramContract(ConnectorContract):
    connector = TelegramConnector
    fixtures = "telegram"
    good_settings = {"enabled": True, "token": TOKEN, "secret_token": SECRET}
    bad_settings = ({"enabled": True, "mode": "push", "token": TOKEN, "secret_token": SECRET}, "mode")

    def unreachable_connector(self):  # type: ignore[no-untyped-def]
        from tests.services import free_port

        settings = TelegramConnector.Settings(enabled=True, token=TOKEN, secret_token=SECRET,
                                              api_base=f"http://127.0.0.1:{free_port()}")
        return TelegramConnector(settings)
