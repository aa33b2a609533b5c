"""X (Twitter) end to end: the real tweepy against a fake X API v2 on 127.0.0.1 (OAuth 1.0a
signatures verified), real Redis, a real RQ worker, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from pydantic import SecretStr
from sqlmodel import select

from connectors.base import Outgoing, PermanentError, RetryableError
from connectors.fakes import serve
from connectors.fakes.x import XState, create_app as fake_app
from connectors.twitter import TwitterConnector
from connectors.twitter_budget import budget_status, seconds_left_in_month, spread_interval
from connectors.twitter_text import redact, shorten, weighted_length
from core.models import Contact, Message, Ticket
from tests.contract import ConnectorContract

CITIZEN = "1422000000000000042"
OTHER = "1422000000000000077"
PUBLIC_URL = "https://aduan.surabaya.go.id"


@pytest.fixture
def fake_x():  # type: ignore[no-untyped-def]
    state = XState()
    state.user(CITIZEN, "budisby", "Budi Santoso")
    state.user(OTHER, "sitirahayu", "Siti Rahayu")
    running = serve(fake_app(state))
    state.url = running.url  # type: ignore[attr-defined]
    yield state
    running.stop()


def x_hub(hub, fake, **settings):  # type: ignore[no-untyped-def]
    for var, value in (("X_BEARER_TOKEN", fake.bearer_token), ("X_CONSUMER_KEY", fake.consumer_key),
                       ("X_CONSUMER_SECRET", fake.consumer_secret), ("X_ACCESS_TOKEN", fake.access_token),
                       ("X_ACCESS_TOKEN_SECRET", fake.access_token_secret)):
        hub.mp.setenv(var, value)
    hub.raw.setdefault("hub", {})["public_url"] = PUBLIC_URL
    hub.configure(twitter={"enabled": True, "api_base": fake.url, "poll_interval": 1, "monthly_read_budget": None,
                           "backfill_hours": 1, **settings})
    return hub


def connector(hub) -> TwitterConnector:  # type: ignore[no-untyped-def]
    """A fresh connector instance, as a restarted `aduan up` would build."""
    return TwitterConnector(hub.cfg.channel("twitter"))


def poll(conn: TwitterConnector, until: Callable[[], bool], timeout: float = 10.0) -> None:
    """Run the poller until `until()` holds (or the timeout), then stop it cleanly."""
    stop = asyncio.Event()

    async def main() -> None:
        task = asyncio.create_task(conn.run(stop))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not task.done() and not until():
            await asyncio.sleep(0.05)
        stop.set()
        await task

    asyncio.run(main())


def inbound(hub) -> list[Message]:  # type: ignore[no-untyped-def]
    with hub.session() as s:
        return list(s.exec(select(Message).where(Message.direction == "in").order_by(Message.id)).all())


def outbound(hub) -> list[Message]:  # type: ignore[no-untyped-def]
    with hub.session() as s:
        return list(s.exec(select(Message).where(Message.direction == "out").order_by(Message.id)).all())


def ticket_of(hub, external_id: str) -> Ticket:  # type: ignore[no-untyped-def]
    with hub.session() as s:
        msg = s.exec(select(Message).where(Message.external_id == external_id)).one()
        return s.get(Ticket, msg.ticket_id)


def answer(hub, external_id: str, response: str) -> None:  # type: ignore[no-untyped-def]
    """An OPD's answer to the ticket, queued the way the console does, then delivered by the worker."""
    from core.pipeline import opd_name
    from core.queue import enqueue_outbound
    from core.replies import queue_reply, take_pending

    with hub.session() as s:
        msg = s.exec(select(Message).where(Message.external_id == external_id)).one()
        t = s.get(Ticket, msg.ticket_id)
        queue_reply(s, hub.cfg, msg, "responded", key=f"responded:{t.id}", ticket=t.number,
                    opd=opd_name(hub.cfg, t.opd_code), response=response)
        ids = take_pending(s)
        s.commit()
    for i in ids:
        enqueue_outbound(i)
    hub.run_worker()


# ------------------------------------------------------------------ the path


def test_mention_becomes_ticket_and_reply_tweet_in_thread(hub, fake_x):  # type: ignore[no-untyped-def]
    x_hub(hub, fake_x)
    m = fake_x.mention(CITIZEN, "@SapawargaSby lampu PJU di Jl. Rungkut Asri Timur mati sudah seminggu, gelap sekali")
    poll(connector(hub), lambda: len(inbound(hub)) >= 1)
    [stored] = inbound(hub)
    assert stored.public and stored.external_id == m["id"] and stored.sender_display == "@budisby"
    assert stored.state == "stored"  # stored before the cursor moved, processed by the worker

    hub.run_worker()

    ticket = ticket_of(hub, m["id"])
    assert ticket.opd_code == "DSDABM"
    [reply] = fake_x.replies_to(m["id"])
    assert ticket.number in reply["text"] and "Dinas Sumber Daya Air dan Bina Marga" in reply["text"]
    assert reply["weighted"] <= 280
    [out] = outbound(hub)
    assert out.delivery_state == "sent" and out.provider_id == reply["id"]
    assert fake_x.dms_sent == []  # a short answer without personal data needs no DM


def test_reply_under_the_city_reply_finds_the_same_ticket(sqlite_hub, fake_x):  # type: ignore[no-untyped-def]
    from core.threads import ticket_for_reply

    hub = x_hub(sqlite_hub, fake_x)
    m = fake_x.mention(CITIZEN, "@SapawargaSby sampah menumpuk di TPS Jl. Kedung Cowek sudah seminggu")
    poll(connector(hub), lambda: len(inbound(hub)) >= 1)
    hub.run_worker()
    [city_reply] = fake_x.replies_to(m["id"])
    follow = fake_x.mention(CITIZEN, "@SapawargaSby ini fotonya min, makin parah", in_reply_to=city_reply["id"],
                            photos=["https://pbs.twimg.com/media/Gd1.jpg"])
    poll(connector(hub), lambda: len(inbound(hub)) >= 2)
    with hub.session() as s:
        msg = s.exec(select(Message).where(Message.external_id == follow["id"])).one()
        assert msg.in_reply_to == city_reply["id"] and msg.attachments[0]["ref"] == "https://pbs.twimg.com/media/Gd1.jpg"
        assert ticket_for_reply(s, msg).number == ticket_of(hub, m["id"]).number


def test_dm_is_answered_by_dm_and_own_dms_are_not_read_back(sqlite_hub, fake_x):  # type: ignore[no-untyped-def]
    hub = x_hub(sqlite_hub, fake_x)
    ev = fake_x.dm(CITIZEN, "Air PDAM di rumah saya mati sejak kemarin pagi, mohon dicek")
    conn = connector(hub)
    poll(conn, lambda: len(inbound(hub)) >= 1)
    [stored] = inbound(hub)
    assert stored.external_id == f"dm:{ev['id']}" and not stored.public
    hub.run_worker()
    ticket = ticket_of(hub, stored.external_id)
    [dm] = fake_x.dms_to(CITIZEN)
    assert ticket.number in dm["text"] and ticket.opd_code == "PDAM"
    assert fake_x.posted == []  # nothing about a DM goes public

    fake_x.dm(CITIZEN, "Terima kasih min, ditunggu petugasnya")
    poll(connector(hub), lambda: len(inbound(hub)) >= 2)
    texts = [m.text for m in inbound(hub)]
    assert len(texts) == 2 and texts[1] == "Terima kasih min, ditunggu petugasnya"  # our own DM was skipped


def test_rate_limit_mid_poll_loses_and_repeats_nothing(sqlite_hub, fake_x):  # type: ignore[no-untyped-def]
    hub = x_hub(sqlite_hub, fake_x)
    ids = [fake_x.mention(CITIZEN, text)["id"] for text in (
        "@SapawargaSby sampah di TPS Keputih tidak diangkut tiga hari, bau sekali",
        "@SapawargaSby parkir liar di depan Pasar Atom bikin macet tiap sore",
        "@SapawargaSby ada ular kobra masuk rumah warga di Kebraon, tolong damkar")]
    fake_x.page_size = 2  # three mentions: two pages
    fake_x.fail_next(429, path="/mentions", skip=1, reset_in=1)  # the second page is refused
    poll(connector(hub), lambda: len(inbound(hub)) >= 3)

    assert sorted(m.external_id for m in inbound(hub)) == sorted(ids)
    calls = fake_x.calls("/mentions")
    assert len(calls) >= 4  # page 1, page 2 -> 429, then both pages again after the reset
    assert calls[2]["at"] >= fake_x.last_reset  # X's x-rate-limit-reset was honoured
    assert "since_id" not in calls[2]["params"]  # the cursor did not move past unstored mentions
    hub.run_worker()
    poll(connector(hub), lambda: len(fake_x.calls("/mentions")) > len(calls))
    hub.run_worker()
    assert len(inbound(hub)) == 3
    for tid in ids:
        assert len(fake_x.replies_to(tid)) == 1  # one acknowledgement each, none repeated


def test_restart_continues_from_stored_cursor(sqlite_hub, fake_x):  # type: ignore[no-untyped-def]
    hub = x_hub(sqlite_hub, fake_x)
    first = fake_x.mention(CITIZEN, "@SapawargaSby jalan berlubang di Jl. Raya Wiyung, bahaya buat motor")
    poll(connector(hub), lambda: len(inbound(hub)) >= 1)
    second = fake_x.mention(OTHER, "@SapawargaSby pohon tumbang di Jl. Darmo menutup jalan")
    poll(connector(hub), lambda: len(inbound(hub)) >= 2)  # a new process: nothing in memory

    assert [m.external_id for m in inbound(hub)] == [first["id"], second["id"]]
    assert fake_x.calls("/mentions")[-1]["params"].get("since_id") in (first["id"], second["id"])
    assert any(c["params"].get("since_id") == first["id"] for c in fake_x.calls("/mentions"))


def test_long_answer_is_shortened_with_status_link_and_sent_in_full_by_dm(sqlite_hub, fake_x):  # type: ignore[no-untyped-def]
    hub = x_hub(sqlite_hub, fake_x)
    m = fake_x.mention(CITIZEN, "@SapawargaSby saluran air di Jl. Kertajaya mampet, tiap hujan banjir")
    other = fake_x.mention(OTHER, "@SapawargaSby gorong-gorong ambles di Jl. Ngagel Jaya Selatan, bahaya")
    fake_x.dm_closed.add(OTHER)  # this citizen does not accept DMs
    poll(connector(hub), lambda: len(inbound(hub)) >= 2)
    hub.run_worker()
    sentence = ("Tim kami telah meninjau lokasi dan menemukan endapan lumpur serta sampah plastik di saluran, "
                "pembersihan dijadwalkan bertahap bersama kelurahan. ")
    long_text = (sentence * 20)[:2000]
    assert len(long_text) == 2000
    answer(hub, m["id"], long_text)
    answer(hub, other["id"], long_text)

    t1, t2 = ticket_of(hub, m["id"]), ticket_of(hub, other["id"])
    reply = fake_x.replies_to(m["id"])[-1]
    assert reply["weighted"] <= 280 and weighted_length(reply["text"]) <= 280
    assert f"{PUBLIC_URL}/status/{t1.number}" in reply["text"] and "DM" in reply["text"]
    assert reply["text"].startswith("Tanggapan")
    [dm] = [d for d in fake_x.dms_to(CITIZEN) if long_text.strip() in d["text"]]  # the full answer, privately
    reply2 = fake_x.replies_to(other["id"])[-1]
    assert reply2["weighted"] <= 280 and f"{PUBLIC_URL}/status/{t2.number}" in reply2["text"]
    assert "DM" not in reply2["text"] and fake_x.dms_to(OTHER) == []
    assert all(o.delivery_state == "sent" for o in outbound(hub))


def test_personal_data_never_in_public_reply(sqlite_hub, fake_x):  # type: ignore[no-untyped-def]
    hub = x_hub(sqlite_hub, fake_x)
    m = fake_x.mention(CITIZEN, "@SapawargaSby air PDAM di daerah Kenjeran mati total dari pagi")
    poll(connector(hub), lambda: len(inbound(hub)) >= 1)
    hub.run_worker()
    private = ("Petugas akan datang ke Jl. Kenjeran No. 12 RT 03 RW 05 besok. Hubungi 0812-3456-7890 "
               "atau budi.santoso@gmail.com; NIK 3578012345678901 sudah diverifikasi.")
    answer(hub, m["id"], private)
    reply = fake_x.replies_to(m["id"])[-1]
    for secret in ("0812", "3456-7890", "gmail", "3578012345678901", "No. 12", "RT 03", "RW 05"):
        assert secret not in reply["text"], secret
    assert "[nomor disamarkan]" in reply["text"] and "besok" in reply["text"]
    assert any(private in d["text"] for d in fake_x.dms_to(CITIZEN))  # the citizen still gets it, privately


def test_dm_and_mention_from_same_user_are_one_contact(hub, fake_x):  # type: ignore[no-untyped-def]
    x_hub(hub, fake_x)
    fake_x.mention(CITIZEN, "@SapawargaSby PKL berjualan di trotoar Jl. Tunjungan, pejalan kaki susah lewat")
    fake_x.dm(CITIZEN, "Min, ini foto PKL-nya kemarin sore di depan Hotel Majapahit")
    poll(connector(hub), lambda: len(inbound(hub)) >= 2)
    msgs = inbound(hub)
    assert {m.public for m in msgs} == {True, False}
    with hub.session() as s:
        contacts = s.exec(select(Contact).where(Contact.channel == "twitter")).all()
    assert len(contacts) == 1 and contacts[0].address == CITIZEN and contacts[0].display_name == "@budisby"
    assert {m.contact_id for m in msgs} == {contacts[0].id}


def test_read_budget_spreads_polls_across_the_month(sqlite_hub, fake_x):  # type: ignore[no-untyped-def]
    hub = x_hub(sqlite_hub, fake_x, monthly_read_budget=100)
    started = time.time()
    poll(connector(hub), lambda: False, timeout=2.5)  # poll_interval 1 s, but the budget is tiny
    assert len(fake_x.calls("/mentions")) == 1 and len(fake_x.calls("/dm_events")) == 1
    status = budget_status()
    assert status["used"] == 2 and status["remaining"] == 98 and status["budget"] == 100
    from datetime import datetime

    wait = datetime.fromisoformat(status["next_poll_at"]).timestamp() - started
    assert wait == pytest.approx(seconds_left_in_month(started) * 2 / 98, abs=10)
    poll(connector(hub), lambda: False, timeout=1.5)  # a restart keeps the pace
    assert len(fake_x.calls("/mentions")) == 1
    assert "98 left" in connector(hub).check()

    assert spread_interval(10_000, 0, 2, 30 * 86400, 60) == pytest.approx(518.4)  # 10k reads, 2 per poll
    assert spread_interval(10_000, 9_999, 2, 3600, 60) == 3601  # spent: wait for next month
    assert spread_interval(None, 0, 2, 3600, 60) == 60


def test_admins_see_the_remaining_budget(sqlite_hub, fake_x):  # type: ignore[no-untyped-def]
    import httpx

    from core import auth
    from core.web import create_app

    hub = x_hub(sqlite_hub, fake_x, monthly_read_budget=500)
    fake_x.mention(CITIZEN, "@SapawargaSby jalan berlubang di Jl. Raya Menur")
    poll(connector(hub), lambda: len(inbound(hub)) >= 1)
    with hub.session() as s:
        admin = auth.create_user(s, "admin.kota", "Kata-Sandi-Panjang-2026", "admin")
        operator = auth.create_user(s, "operator1", "Kata-Sandi-Panjang-2026", "operator")
        s.commit()
        tokens = {u.username: auth.start_session(u.id).token for u in (admin, operator)}
    web = serve(create_app(hub.cfg))
    try:
        url = f"{web.url}/console/admin/x-budget"
        got = httpx.get(url, cookies={auth.SESSION_COOKIE: tokens["admin.kota"]}).json()
        assert got["budget"] == 500 and got["used"] == 2 and got["remaining"] == 498  # 1 mention + 1 for the empty DM page
        assert httpx.get(url, cookies={auth.SESSION_COOKIE: tokens["operator1"]}).status_code == 403
        assert httpx.get(url).status_code in (303, 307, 401)  # not signed in: to the login page
    finally:
        web.stop()


def test_without_budget_polls_at_the_configured_interval(sqlite_hub, fake_x):  # type: ignore[no-untyped-def]
    hub = x_hub(sqlite_hub, fake_x)
    poll(connector(hub), lambda: len(fake_x.calls("/mentions")) >= 3, timeout=5)
    calls = fake_x.calls("/mentions")
    assert len(calls) >= 3 and calls[2]["at"] - calls[1]["at"] >= 0.9


# ------------------------------------------------------------------ sending errors


def test_send_errors_map_to_retry_or_refusal(sqlite_hub, fake_x):  # type: ignore[no-untyped-def]
    hub = x_hub(sqlite_hub, fake_x)
    m = fake_x.mention(CITIZEN, "@SapawargaSby halo")
    conn = connector(hub)
    reply = Outgoing(to=CITIZEN, text="Laporan ADU-2026-000001 kami terima.", reply_to=m["id"], public=True)
    fake_x.fail_next(503, path="/2/tweets", method="POST")
    with pytest.raises(RetryableError):
        conn.send(reply)
    fake_x.fail_next(429, path="/2/tweets", method="POST", reset_in=30)
    with pytest.raises(RetryableError) as rate:
        conn.send(reply)
    assert 25 <= rate.value.retry_after <= 32
    with pytest.raises(PermanentError):  # X refuses a reply to a deleted tweet: retrying cannot help
        conn.send(Outgoing(to=CITIZEN, text="Balasan", reply_to="1", public=True))
    fake_x.dm_closed.add(OTHER)
    with pytest.raises(PermanentError):
        conn.send(Outgoing(to=OTHER, text="Halo"))
    assert conn.send(reply).provider_id == fake_x.posted[-1]["id"]
    wrong = TwitterConnector(hub.cfg.channel("twitter").model_copy(update={"consumer_secret": SecretStr("wrong")}))
    with pytest.raises(PermanentError):  # the fake checks OAuth 1.0a signatures
        wrong.check()


def test_retry_after_partial_send_does_not_repeat_the_dm(sqlite_hub, fake_x):  # type: ignore[no-untyped-def]
    hub = x_hub(sqlite_hub, fake_x)
    m = fake_x.mention(CITIZEN, "@SapawargaSby trotoar rusak di Jl. Diponegoro")
    long = Outgoing(to=CITIZEN, text="Laporan ADU-2026-000009: " + "perbaikan trotoar dijadwalkan bulan depan. " * 20,
                    reply_to=m["id"], public=True, idempotency_key="out:responded:9")
    fake_x.fail_next(503, path="/2/tweets", method="POST")
    with pytest.raises(RetryableError):  # the DM went out, the reply tweet did not
        connector(hub).send(long)
    result = connector(hub).send(long)  # the worker's retry
    assert len(fake_x.dms_to(CITIZEN)) == 1 and len(fake_x.replies_to(m["id"])) == 1
    assert result.provider_id.startswith(fake_x.replies_to(m["id"])[0]["id"])


def test_failed_reply_is_retried_by_the_worker(sqlite_hub, fake_x):  # type: ignore[no-untyped-def]
    hub = x_hub(sqlite_hub, fake_x)
    m = fake_x.mention(CITIZEN, "@SapawargaSby lampu lalu lintas di perempatan Jl. Diponegoro mati")
    poll(connector(hub), lambda: len(inbound(hub)) >= 1)
    fake_x.fail_next(503, path="/2/tweets", method="POST")
    hub.run_worker()
    [out] = outbound(hub)
    assert out.delivery_state == "retry" and "X server error" in (out.error or "")
    assert fake_x.replies_to(m["id"]) == []


# ------------------------------------------------------------------ counting and redaction


@pytest.mark.parametrize("text,weight", [
    ("a" * 280, 280),
    ("Jalan rusak di Surabaya.", 24),
    ("https://aduan.surabaya.go.id/status/ADU-2026-000123", 23),
    ("cek aduan.surabaya.go.id/status/ADU-2026-000123.", 28),  # 4 + 23 + the full stop
    ("中文字", 6),
    ("🇮🇩", 2),
    ("👨\u200d👩\u200d👧", 2),
    ("❤️", 2),
    ("e\u0301", 1),  # NFC: é
])
def test_weighted_length_follows_twitter_text(text: str, weight: int) -> None:
    assert weighted_length(text) == weight


@pytest.mark.parametrize("body", [
    "Tanggapan: " + "perbaikan saluran dijadwalkan minggu depan. " * 60,
    "Tanggapan: " + "道路の補修を予定しています。" * 40,
    "Tanggapan: " + "🙏 terima kasih 🇮🇩 " * 60,
    "x" * 2000,
])
def test_shorten_always_fits_and_keeps_the_link(body: str) -> None:
    link = "Selengkapnya: https://aduan.surabaya.go.id/status/ADU-2026-000123"
    out = shorten(body, link)
    assert weighted_length(out) <= 280 and out.endswith(link) and len(out) > 100


def test_redact_keeps_what_the_citizen_already_posted() -> None:
    said = "lampu mati di Jl. Rungkut Asri No. 5 min"
    assert redact("Petugas ke Jl. Rungkut Asri No. 5 besok", public_text=said) == "Petugas ke Jl. Rungkut Asri No. 5 besok"
    assert "No. 7" not in redact("Petugas ke Jl. Rungkut Asri No. 7 besok", public_text=said)
    kept = "Laporan ADU-2026-000123 tanggal 29-11-2026 pukul 08.30 WIB di Kecamatan Rungkut"
    assert redact(kept) == kept  # ticket numbers, dates and places are not personal data


class TestTwitterContract(ConnectorContract):
    connector = TwitterConnector
    fixtures = "twitter"
    good_settings = {"enabled": True, "consumer_key": "ck", "consumer_secret": "cs", "access_token": "at",
                     "access_token_secret": "ats", "monthly_read_budget": 10000}
    bad_settings = ({"enabled": True, "consumer_key": "ck", "consumer_secret": "cs", "access_token": "at",
                     "access_token_secret": "ats", "poll_interval": "often"}, "poll_interval")
    send_to = CITIZEN

    def unreachable_connector(self):  # type: ignore[no-untyped-def]
        from tests.services import free_port

        settings = TwitterConnector.Settings(enabled=True, consumer_key="ck", consumer_secret="cs", access_token="at",
                                             access_token_secret="ats", api_base=f"http://127.0.0.1:{free_port()}")
        return TwitterConnector(settings)

    def test_missing_user_keys_named(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from core.config import ConfigError

        with pytest.raises(ConfigError) as err:
            self._parse({"enabled": True, "bearer_token": "only-bearer"}, monkeypatch)
        assert "channels.twitter" in str(err.value) and "consumer_key" in str(err.value)
