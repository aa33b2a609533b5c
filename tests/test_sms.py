"""SMS end to end: the real twilio client against a fake Twilio REST API on 127.0.0.1, signed
webhooks sent as Twilio sends them (through a "reverse proxy": the hub's public URL differs
from where it listens), the hub's real web app, real Redis, a real RQ worker, SQLite and PostgreSQL."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlmodel import select

from connectors.fakes import serve
from connectors.fakes.twilio import TwilioState, create_app as fake_app, gsm_segments, twilio_signature
from connectors.sms import SmsConnector
from connectors.twilio_common import normalise_phone, plan_sms, segment_count
from core.models import Contact, Event, Message, Ticket
from tests.contract import ConnectorContract

ACCOUNT = "AC" + "5" * 32
TOKEN = "twilio-test-auth-token-1"
FROM = "+62315550100"
PUBLIC = "https://aduan.surabaya.test"  # what Twilio is configured with; a proxy forwards to the hub
CITIZEN = "+6281234567890"
TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


@pytest.fixture
def fake_twilio():  # type: ignore[no-untyped-def]
    state = TwilioState(account_sid=ACCOUNT, auth_token=TOKEN)
    running = serve(fake_app(state))
    state.url = running.url  # type: ignore[attr-defined]
    yield state
    running.stop()


def twilio_env(hub, public: str = PUBLIC) -> None:  # type: ignore[no-untyped-def]
    hub.mp.setenv("TWILIO_ACCOUNT_SID", ACCOUNT)
    hub.mp.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    hub.mp.setenv("TWILIO_SMS_FROM", FROM)
    hub.mp.setenv("TWILIO_WHATSAPP_FROM", "+62315550199")
    hub.raw["hub"]["public_url"] = public


def start_web(hub, fake, public: str = PUBLIC, **channels):  # type: ignore[no-untyped-def]
    """The hub's web app on loopback; the fake Twilio reaches it through `public`, like a reverse proxy."""
    from core.web import create_app

    twilio_env(hub, public)
    hub.configure(**{name: {"enabled": True, "api_base": fake.url, **block} for name, block in channels.items()})
    running = serve(create_app(hub.cfg))
    fake.proxy[public] = running.url
    return running


@pytest.fixture
def web(hub, fake_twilio):  # type: ignore[no-untyped-def]
    running = start_web(hub, fake_twilio, sms={})
    yield running
    running.stop()


@pytest.fixture
def sweb(sqlite_hub, fake_twilio):  # type: ignore[no-untyped-def]
    running = start_web(sqlite_hub, fake_twilio, sms={})
    yield running
    running.stop()


def inbound(hub) -> list[Message]:  # type: ignore[no-untyped-def]
    with hub.session() as s:
        return list(s.exec(select(Message).where(Message.direction == "in")).all())


def outbound(hub) -> list[Message]:  # type: ignore[no-untyped-def]
    with hub.session() as s:
        return list(s.exec(select(Message).where(Message.direction == "out").order_by(Message.id)).all())


def tickets(hub) -> list[Ticket]:  # type: ignore[no-untyped-def]
    with hub.session() as s:
        return list(s.exec(select(Ticket)).all())


def report(fake, text: str, sender: str = CITIZEN, **kw):  # type: ignore[no-untyped-def]
    resp, params = fake.send_inbound(f"{PUBLIC}/webhooks/sms", sender, text, **kw)
    return resp, params


def test_signed_sms_becomes_ticket_and_acknowledgement_with_delivery_reports(hub, fake_twilio, web):  # type: ignore[no-untyped-def]
    resp, params = report(fake_twilio, "Lampu PJU di Jl. Rungkut Asri Timur mati sudah seminggu, gelap sekali")
    assert resp.status_code == 200 and resp.text == TWIML and resp.headers["content-type"].startswith("text/xml")
    stored = inbound(hub)
    assert len(stored) == 1 and stored[0].state == "stored" and stored[0].external_id == params["MessageSid"]

    hub.run_worker()

    (ticket,) = tickets(hub)
    assert ticket.opd_code == "DSDABM" and ticket.status == "routed" and ticket.channel == "sms"
    (sent,) = fake_twilio.messages_to(CITIZEN)
    assert ticket.number in sent["body"] and "Dinas Sumber Daya Air dan Bina Marga" in sent["body"]
    assert sent["body"].startswith("Laporan Anda diterima")  # the SMS channel's own, shorter template
    assert sent["from"] == FROM and sent["_callback"] == f"{PUBLIC}/webhooks/sms/status"
    (out,) = outbound(hub)
    assert out.delivery_state == "queued" and out.provider_id == sent["sid"] and out.ticket_id == ticket.id

    fake_twilio.set_status(sent["sid"], "sent")
    fake_twilio.set_status(sent["sid"], "delivered")
    assert [r.status_code for r in fake_twilio.flush_callbacks()] == [204, 204]
    assert outbound(hub)[0].delivery_state == "delivered"


def test_bad_or_missing_signature_is_403_and_nothing_stored(sqlite_hub, fake_twilio, sweb):  # type: ignore[no-untyped-def]
    hub, web = sqlite_hub, sweb
    url = f"{PUBLIC}/webhooks/sms"
    params = fake_twilio.inbound_params(CITIZEN, "jalan berlubang di Jl. Kenjeran")
    assert fake_twilio.post_signed(url, params, signature="bm90IGEgc2lnbmF0dXJl").status_code == 403
    assert fake_twilio.post_signed(url, params, signature=None).status_code == 403
    tampered = dict(params, Body="pesan palsu")  # signed for one body, another one posted
    resp = httpx.post(f"{web.url}/webhooks/sms", data=tampered,
                      headers={"X-Twilio-Signature": twilio_signature(TOKEN, url, params)})
    assert resp.status_code == 403
    wrong_key = twilio_signature("another-account-token", url, params)
    assert fake_twilio.post_signed(url, params, signature=wrong_key).status_code == 403
    # Signed for the address the hub listens on, not the public one Twilio calls: refused too.
    internal = twilio_signature(TOKEN, f"{web.url}/webhooks/sms", params)
    assert httpx.post(f"{web.url}/webhooks/sms", data=params, headers={"X-Twilio-Signature": internal}).status_code == 403
    assert fake_twilio.post_signed(f"{PUBLIC}/webhooks/sms/status", {"MessageSid": "SM" + "0" * 32,
                                   "MessageStatus": "delivered"}, signature="x").status_code == 403
    hub.run_worker()
    assert inbound(hub) == [] and tickets(hub) == [] and fake_twilio.sent == []


def test_public_url_with_a_path_prefix_stripped_by_the_proxy(sqlite_hub, fake_twilio):  # type: ignore[no-untyped-def]
    running = start_web(sqlite_hub, fake_twilio, public=f"{PUBLIC}/aduan", sms={})
    try:
        resp, _ = fake_twilio.send_inbound(f"{PUBLIC}/aduan/webhooks/sms", CITIZEN, "lampu jalan mati di Jl. Kertajaya")
        assert resp.status_code == 200
        sqlite_hub.run_worker()
    finally:
        running.stop()
    (sent,) = fake_twilio.messages_to(CITIZEN)
    assert sent["_callback"] == f"{PUBLIC}/aduan/webhooks/sms/status"


def test_proxied_public_url_signatures_validate(sqlite_hub, fake_twilio, sweb):  # type: ignore[no-untyped-def]
    # The hub listens on http://127.0.0.1:<port>; Twilio signs https://aduan.surabaya.test/… (and
    # sometimes with the explicit :443): both validate, query string included.
    params = fake_twilio.inbound_params(CITIZEN, "sampah menumpuk di TPS")
    url = f"{PUBLIC}:443/webhooks/sms?src=twilio"
    resp = httpx.post(f"{sweb.url}/webhooks/sms?src=twilio", data=params,
                      headers={"X-Twilio-Signature": twilio_signature(TOKEN, url, params)})
    assert resp.status_code == 200 and resp.text == TWIML
    assert len(inbound(sqlite_hub)) == 1


def test_replayed_message_sid_creates_no_second_ticket_or_reply(hub, fake_twilio, web):  # type: ignore[no-untyped-def]
    resp, params = report(fake_twilio, "sampah di TPS Keputih belum diangkut tiga hari, bau sekali")
    hub.run_worker()
    again = fake_twilio.post_signed(f"{PUBLIC}/webhooks/sms", params)  # Twilio retries the same webhook
    assert again.status_code == 200 and again.text == TWIML
    hub.run_worker()
    assert len(inbound(hub)) == 1 and len(tickets(hub)) == 1
    assert len(fake_twilio.messages_to(CITIZEN)) == 1


def test_twilio_500_is_retried_then_failed_and_visible_on_the_ticket(sqlite_hub, fake_twilio, sweb):  # type: ignore[no-untyped-def]
    from workers.jobs import send_outbound

    hub = sqlite_hub
    MAX_ATTEMPTS = hub.cfg.queue.outbound_max_attempts
    fake_twilio.fail_next(500, times=MAX_ATTEMPTS)
    report(fake_twilio, "pohon tumbang di Jl. Diponegoro menutup jalan")
    hub.run_worker()
    (out,) = outbound(hub)
    assert out.delivery_state == "retry" and "Twilio 500" in out.error and out.attempts == 1
    for attempt in range(1, MAX_ATTEMPTS):
        state = send_outbound(out.id, attempt=attempt)["state"]
    assert state == "failed"
    (out,) = outbound(hub)
    (ticket,) = tickets(hub)
    assert out.delivery_state == "failed" and out.attempts == MAX_ATTEMPTS and "20500" in out.error
    assert len(fake_twilio.requests) == MAX_ATTEMPTS and fake_twilio.sent == []
    with hub.session() as s:
        actions = [e.action for e in s.exec(select(Event).where(Event.ticket_id == ticket.id)).all()]
    assert "outbound.failed" in actions and actions.count("outbound.retry") == MAX_ATTEMPTS - 1


def test_429_is_retryable_with_the_retry_after_header(fake_twilio) -> None:  # type: ignore[no-untyped-def]
    from connectors.base import Outgoing, RetryableError

    conn = SmsConnector(SmsConnector.Settings(enabled=True, account_sid=ACCOUNT, auth_token=TOKEN, from_number=FROM,
                                              api_base=fake_twilio.url, status_callback=False))
    fake_twilio.fail_next(429)
    with pytest.raises(RetryableError) as err:
        conn.send(Outgoing(to="0812-3456-7890", text="Tes", idempotency_key="t429"))
    assert err.value.retry_after == 1.0 and fake_twilio.sent == []
    assert conn.send(Outgoing(to="0812-3456-7890", text="Tes", idempotency_key="t429")).state == "queued"
    assert fake_twilio.sent[0]["to"] == CITIZEN and fake_twilio.requests[-1]["From"] == [FROM]
    assert conn.check() == "Aduan Kota (fake) (active)"  # "test connection" in the console
    fake_twilio.set_status(fake_twilio.sent[0]["sid"], "delivered")
    fetched = conn.client().messages(fake_twilio.sent[0]["sid"]).fetch()  # GET Messages/{Sid}.json
    assert fetched.status == "delivered" and fetched.to == CITIZEN and fetched.num_segments == "1"


def _long_reply(hub, fake, text: str) -> tuple[list[dict], Message]:  # type: ignore[no-untyped-def]
    """An operator's long answer to the citizen's ticket, delivered by the worker."""
    report(fake, "jalan rusak parah di Jl. Ahmad Yani dekat Bundaran Waru")
    hub.run_worker()
    before = len(fake.sent)
    out = _operator_reply(hub, "op:long", text)
    return fake.sent[before:], out


def _parts_event(hub, out: Message) -> dict:  # type: ignore[no-untyped-def]
    with hub.session() as s:
        return s.exec(select(Event).where(Event.message_id == out.id, Event.action == "outbound.queued")).one().data


@pytest.mark.parametrize("alphabet", ["GSM-7", "UCS-2"])
def test_2000_character_reply_is_split_into_real_sms_segments(sqlite_hub, fake_twilio, sweb, alphabet):  # type: ignore[no-untyped-def]
    sentence = "Petugas DSDABM sudah meninjau lokasi dan perbaikan jalan dijadwalkan minggu depan. "
    if alphabet == "UCS-2":
        sentence = "Petugas sudah meninjau lokasi 🙏 perbaikan dijadwalkan minggu depan. "
    text = (sentence * 40)[:2000].strip()
    assert len(text) >= 1990
    parts, out = _long_reply(sqlite_hub, fake_twilio, text)
    bodies = [p["body"] for p in parts]
    assert all(re.match(rf"^\({i}/{len(bodies)}\) ", b) for i, b in enumerate(bodies, 1))
    assert " ".join(re.sub(r"^\(\d+/\d+\) ", "", b) for b in bodies) == text  # nothing cut or lost
    twilio_counts = [int(p["num_segments"]) for p in parts]
    assert all(c <= 10 for c in twilio_counts) and all(len(b) <= 1600 for b in bodies)
    if alphabet == "GSM-7":
        # 2000 characters + two "(i/2) " markers = 2012 septets: 153 per concatenated part -> 14 segments.
        assert len(bodies) == 2 and twilio_counts == [10, 4]
    else:
        # UCS-2 (emoji = 2 units): 67 units per part, at most 10 parts per Twilio message.
        assert len(bodies) == 4 and sum(twilio_counts) == 31 and twilio_counts[:3] == [10, 10, 10]
    assert _parts_event(sqlite_hub, out)["parts"] == sum(twilio_counts)  # the hub says how many segments
    assert out.provider_id == ",".join(p["sid"] for p in parts)


def test_500_on_the_second_part_never_resends_the_first(sqlite_hub, fake_twilio, sweb):  # type: ignore[no-untyped-def]
    from workers.jobs import send_outbound

    hub = sqlite_hub
    report(fake_twilio, "jalan rusak parah di Jl. Ahmad Yani dekat Bundaran Waru")
    hub.run_worker()
    fake_twilio.fail_next(500, after=1)  # part 1 accepted, part 2 refused
    text = ("Perbaikan jalan dijadwalkan minggu depan oleh DSDABM. " * 40)[:2000].strip()
    out = _operator_reply(hub, "op:parts", text=text)
    assert out.delivery_state == "retry" and len(fake_twilio.sent) == 2  # the ack and part 1
    assert send_outbound(out.id, attempt=1)["state"] == "queued"
    bodies = [m["body"] for m in fake_twilio.sent[1:]]
    assert [b[:6] for b in bodies] == ["(1/2) ", "(2/2) "]  # part 1 once, then part 2
    with hub.session() as s:
        out = s.get(Message, out.id)
    assert out.provider_id == ",".join(m["sid"] for m in fake_twilio.sent[1:])


def test_segment_arithmetic_exact_counts() -> None:
    cases = {"": 1, "a" * 160: 1, "a" * 161: 2, "a" * 306: 2, "a" * 307: 3,
             "€" * 80: 1, "€" * 81: 2, "a" * 152 + "€": 1, "a" * 159 + "€": 2, "[" * 80: 1, "[" * 81: 2,
             "ā" * 70: 1, "ā" * 71: 2, "ā" * 134: 2, "ā" * 135: 3,
             "🙏" * 35: 1, "a" * 66 + "🙏": 1, "a" * 69 + "🙏": 2}
    for text, want in cases.items():
        assert segment_count(text) == want, (text[:3], len(text))
        assert gsm_segments(text) == want  # the fake Twilio's independent count agrees
    # 306 septets would fit two parts, but the ESC+"[" pair cannot straddle a part boundary.
    assert segment_count("a" * 152 + "[" + "a" * 152) == 3
    assert plan_sms("Laporan ADU-2026-000001 diterima.") == ["Laporan ADU-2026-000001 diterima."]
    long_word = "x" * 3200
    assert "".join(re.sub(r"^\(\d+/\d+\) ", "", p) for p in plan_sms(long_word)) == long_word


def _operator_reply(hub, key: str, text: str = "Petugas Dishub sudah ke lokasi.") -> Message:  # type: ignore[no-untyped-def]
    from core.db import session_scope
    from core.queue import enqueue_outbound
    from core.replies import queue_reply, take_pending

    with session_scope() as s:
        msg = s.exec(select(Message).where(Message.direction == "in").order_by(Message.id)).first()
        queue_reply(s, hub.cfg, msg, "operator_reply", key=key, text=text)
        ids = take_pending(s)
    for i in ids:
        enqueue_outbound(i)
    hub.run_worker()
    with hub.session() as s:
        return s.exec(select(Message).where(Message.external_id == f"out:{key}")).one()


def _contact(hub) -> Contact:  # type: ignore[no-untyped-def]
    with hub.session() as s:
        return s.exec(select(Contact).where(Contact.address == CITIZEN)).one()


def test_citizen_stop_opts_out_at_once_without_a_ticket(sqlite_hub, fake_twilio, sweb):  # type: ignore[no-untyped-def]
    hub = sqlite_hub
    report(fake_twilio, "parkir liar di depan Pasar Atom bikin macet setiap sore")
    hub.run_worker()
    resp, _ = report(fake_twilio, "Stop")  # Twilio unsubscribes the number and forwards the keyword
    assert resp.status_code == 200 and resp.text == TWIML
    hub.run_worker()
    assert len(tickets(hub)) == 1  # "Stop" is not a complaint
    contact = _contact(hub)
    assert contact.opted_out and "STOP" in contact.opted_out_reason
    assert _operator_reply(hub, "op:1").delivery_state == "suppressed"
    assert len(fake_twilio.requests) == 1  # only the first acknowledgement ever reached Twilio
    report(fake_twilio, "START")
    assert not _contact(hub).opted_out


def test_twilio_21610_marks_contact_opted_out_and_suppresses_further_sms(sqlite_hub, fake_twilio, sweb):  # type: ignore[no-untyped-def]
    hub = sqlite_hub
    report(fake_twilio, "parkir liar di depan Pasar Atom bikin macet setiap sore")
    hub.run_worker()
    fake_twilio.opted_out.add(CITIZEN)  # the citizen replied STOP to Twilio in a way the hub never saw
    first = _operator_reply(hub, "op:1")
    assert first.delivery_state == "failed" and "21610" in first.error and "STOP" in first.error
    contact = _contact(hub)
    assert contact.opted_out and "21610" in contact.opted_out_reason  # operators see why
    assert _operator_reply(hub, "op:2").delivery_state == "suppressed"
    assert len(fake_twilio.messages_to(CITIZEN)) == 1 and len(fake_twilio.requests) == 2


def test_0812_62812_and_plus62812_are_one_contact(hub, fake_twilio, web):  # type: ignore[no-untyped-def]
    for i, sender in enumerate(["081234567891", "6281234567891", "+62 812-3456-7891"]):
        resp, _ = report(fake_twilio, f"air PDAM mati di Ketintang hari ke-{i + 1}", sender=sender)
        assert resp.status_code == 200
    with hub.session() as s:
        contacts = s.exec(select(Contact)).all()
    assert [(c.channel, c.address) for c in contacts] == [("sms", "+6281234567891")]
    assert normalise_phone("0031 20 555 0100") == "+31205550100"
    with pytest.raises(ValueError):
        normalise_phone("Telkomsel")


def test_status_callback_shows_undelivered_with_error_code(hub, fake_twilio, web):  # type: ignore[no-untyped-def]
    report(fake_twilio, "lampu lalu lintas mati di perempatan Jl. Pemuda")
    hub.run_worker()
    (sent,) = fake_twilio.messages_to(CITIZEN)
    fake_twilio.set_status(sent["sid"], "undelivered", 30003)
    fake_twilio.set_status(sent["sid"], "sent")  # a late, out-of-order report must not hide the failure
    assert [r.status_code for r in fake_twilio.flush_callbacks()] == [204, 204]
    (out,) = outbound(hub)
    assert out.delivery_state == "undelivered" and out.error.startswith("30003") and "dijangkau" in out.error
    (ticket,) = tickets(hub)
    with hub.session() as s:
        event = s.exec(select(Event).where(Event.ticket_id == ticket.id, Event.action == "outbound.undelivered")).one()
    assert event.data["error_code"] == "30003" and event.data["provider_id"] == sent["sid"]


def test_database_down_answers_503_then_twilio_retry_is_stored_once(sqlite_hub, fake_twilio, sweb):  # type: ignore[no-untyped-def]
    from core import db
    from tests.services import free_port

    hub = sqlite_hub
    params = fake_twilio.inbound_params(CITIZEN, "banjir karena got mampet di Jl. Ngagel")
    hub.mp.setenv("DATABASE_URL", f"postgresql+psycopg://aduan@127.0.0.1:{free_port()}/down")
    db._engine_for.cache_clear()
    assert fake_twilio.post_signed(f"{PUBLIC}/webhooks/sms", params).status_code == 503
    hub.mp.setenv("DATABASE_URL", hub.database_url)
    db._engine_for.cache_clear()
    resp = fake_twilio.post_signed(f"{PUBLIC}/webhooks/sms", params)
    assert resp.status_code == 200 and resp.text == TWIML and len(inbound(hub)) == 1


def test_mms_photo_is_stored_as_attachment(sqlite_hub, fake_twilio, sweb):  # type: ignore[no-untyped-def]
    media = [(f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages/MM{'1' * 32}/Media/ME{'2' * 32}",
              "image/jpeg")]
    resp, _ = report(fake_twilio, "foto jalan berlubang", media=media)
    assert resp.status_code == 200
    (msg,) = inbound(sqlite_hub)
    assert msg.attachments == [{"kind": "photo", "ref": media[0][0], "mime_type": "image/jpeg",
                                "size": None, "name": None}]


class TestSmsContract(ConnectorContract):
    connector = SmsConnector
    fixtures = "sms"
    send_to = CITIZEN
    good_settings = {"enabled": True, "account_sid": ACCOUNT, "auth_token": TOKEN, "from_number": FROM}
    bad_settings = ({"enabled": True, "account_sid": ACCOUNT, "auth_token": TOKEN, "from_number": FROM,
                     "default_region": "XX"}, "default_region")

    def test_sender_or_service_required(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from core.config import ConfigError

        with pytest.raises(ConfigError) as err:
            self._parse({"enabled": True, "account_sid": ACCOUNT, "auth_token": TOKEN}, monkeypatch)
        assert "channels.sms: from_number or messaging_service_sid is required" in str(err.value)

    def unreachable_connector(self):  # type: ignore[no-untyped-def]
        from tests.services import free_port

        settings = SmsConnector.Settings(enabled=True, account_sid=ACCOUNT, auth_token=TOKEN, from_number=FROM,
                                         api_base=f"http://127.0.0.1:{free_port()}", status_callback=False)
        return SmsConnector(settings)


def test_signed_arbitrary_forms_get_clean_answers_and_refusals_write_nothing(sqlite_hub, fake_twilio, sweb):  # type: ignore[no-untyped-def]
    """Property-based: correctly signed but arbitrary form bodies (missing fields, nasty text, 1 MB
    bodies, right-to-left and zero-width characters) never produce a 500 or a partial write."""
    from hypothesis import HealthCheck, given, settings, strategies as st

    nasty = st.one_of(st.text(max_size=200), st.sampled_from(
        ["", "\u200b", "\u202eSTOP", "😡" * 30, "'; DROP TABLE message; --", "<script>x</script>", "a" * 1_000_000]))
    keys = st.sampled_from(["MessageSid", "From", "To", "Body", "NumMedia", "MediaUrl0", "MediaContentType0",
                            "AccountSid", "SmsStatus", "OptOutType", "ProfileName", "Latitude", "Longitude"])

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(form=st.dictionaries(keys, nasty, max_size=8))
    def check(form: dict[str, str]) -> None:
        before = len(inbound(sqlite_hub))
        r = fake_twilio.post_signed(f"{PUBLIC}/webhooks/sms", form)
        assert r.status_code in (200, 400), r.text[:200]
        if r.status_code == 400:
            assert len(inbound(sqlite_hub)) == before

    check()
