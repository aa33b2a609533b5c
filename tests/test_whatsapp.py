"""WhatsApp through Twilio end to end: `whatsapp:+62…` on the shared signed webhook becomes its own
channel with its own templates; the 24-hour customer-service window is honoured (no provider call,
the reason on the ticket, or the approved template when one is configured)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import select

from connectors.whatsapp import WhatsAppConnector
from core.models import Contact, Event
from tests.contract import ConnectorContract
from tests.test_sms import ACCOUNT, PUBLIC, TOKEN, TWIML, fake_twilio, inbound, outbound, start_web, tickets  # noqa: F401

WA_FROM = "+62315550199"
CITIZEN = "+6281299990001"
TEMPLATE = "HX" + "a" * 32


@pytest.fixture
def wa_web(hub, fake_twilio):  # type: ignore[no-untyped-def]
    running = start_web(hub, fake_twilio, sms={}, whatsapp={})
    yield running
    running.stop()


def wa_hub(hub, fake, **block):  # type: ignore[no-untyped-def]
    running = start_web(hub, fake, whatsapp=block)
    return running


def report(fake, text: str, sender: str = CITIZEN, path: str = "/webhooks/sms", **kw):  # type: ignore[no-untyped-def]
    return fake.send_inbound(f"{PUBLIC}{path}", f"whatsapp:{sender}", text, **kw)


def test_whatsapp_message_on_the_sms_webhook_is_its_own_channel(hub, fake_twilio, wa_web):  # type: ignore[no-untyped-def]
    resp, params = report(fake_twilio, "Jalan berlubang besar di depan SDN Ketabang, bahaya untuk motor",
                          profile_name="Siti Aminah")
    assert resp.status_code == 200 and resp.text == TWIML
    (msg,) = inbound(hub)
    assert msg.channel == "whatsapp" and msg.sender_display == "Siti Aminah" and msg.external_id == params["MessageSid"]
    hub.run_worker()
    (ticket,) = tickets(hub)
    assert ticket.channel == "whatsapp" and ticket.opd_code == "DSDABM"
    (sent,) = fake_twilio.messages_to(f"whatsapp:{CITIZEN}")
    assert sent["from"] == f"whatsapp:{WA_FROM}"
    assert f"*{ticket.number}*" in sent["body"] and "🙏" in sent["body"]  # WhatsApp's own template
    with hub.session() as s:
        contact = s.exec(select(Contact)).one()
    assert (contact.channel, contact.address, contact.display_name) == ("whatsapp", CITIZEN, "Siti Aminah")
    fake_twilio.set_status(sent["sid"], "read")
    assert [r.status_code for r in fake_twilio.flush_callbacks()] == [204]
    assert outbound(hub)[0].delivery_state == "read"


def test_same_number_on_sms_and_whatsapp_are_separate_channels(sqlite_hub, fake_twilio):  # type: ignore[no-untyped-def]
    running = start_web(sqlite_hub, fake_twilio, sms={}, whatsapp={})
    try:
        report(fake_twilio, "sampah belum diangkut di TPS Wonokromo", path="/webhooks/whatsapp")
        fake_twilio.send_inbound(f"{PUBLIC}/webhooks/sms", "0812-9999-0001", "sampah belum diangkut di TPS Wonokromo")
        sqlite_hub.run_worker()
    finally:
        running.stop()
    with sqlite_hub.session() as s:
        pairs = sorted((c.channel, c.address) for c in s.exec(select(Contact)).all())
    assert pairs == [("sms", CITIZEN), ("whatsapp", CITIZEN)]
    assert len(fake_twilio.messages_to(f"whatsapp:{CITIZEN}")) == 1 and len(fake_twilio.messages_to(CITIZEN)) == 1


def _old_message(hub, hours: float) -> None:  # type: ignore[no-untyped-def]
    """A citizen's WhatsApp message received `hours` ago (e.g. stored while the workers were down)."""
    from core.intake import accept

    params = {"MessageSid": "SM" + "7" * 32, "From": f"whatsapp:{CITIZEN}", "To": f"whatsapp:{WA_FROM}",
              "Body": "Pohon tumbang menutup Jl. Raya Darmo sejak kemarin", "NumMedia": "0", "ProfileName": "Budi"}
    msg = WhatsAppConnector.parse(params)
    accept(msg.model_copy(update={"received_at": datetime.now(timezone.utc) - timedelta(hours=hours)}))
    hub.run_worker()


def test_outside_the_24_hour_window_no_provider_call_and_the_reason_on_the_ticket(sqlite_hub, fake_twilio):  # type: ignore[no-untyped-def]
    running = wa_hub(sqlite_hub, fake_twilio)
    try:
        _old_message(sqlite_hub, hours=25)
    finally:
        running.stop()
    assert fake_twilio.requests == []  # Twilio is not even asked
    (out,) = outbound(sqlite_hub)
    (ticket,) = tickets(sqlite_hub)
    assert out.delivery_state == "failed" and "di luar jendela 24 jam WhatsApp" in out.error
    assert "hanya template yang disetujui" in out.error and out.ticket_id == ticket.id
    with sqlite_hub.session() as s:
        event = s.exec(select(Event).where(Event.ticket_id == ticket.id, Event.action == "outbound.failed")).one()
        contact = s.exec(select(Contact)).one()
    assert "24 jam" in event.data["error"] and not contact.opted_out


def test_outside_the_window_the_approved_template_is_sent(sqlite_hub, fake_twilio):  # type: ignore[no-untyped-def]
    running = wa_hub(sqlite_hub, fake_twilio, template_content_sid=TEMPLATE)
    try:
        _old_message(sqlite_hub, hours=30)
    finally:
        running.stop()
    (request,) = fake_twilio.requests
    assert request["ContentSid"] == [TEMPLATE] and "Body" not in request
    (ticket,) = tickets(sqlite_hub)
    assert ticket.number in json.loads(request["ContentVariables"][0])["1"]
    assert outbound(sqlite_hub)[0].delivery_state == "queued"


def test_inside_the_window_free_text_and_twilio_63016_is_still_shown(sqlite_hub, fake_twilio):  # type: ignore[no-untyped-def]
    # The hub's clock says 2 hours, so it sends free text; this fake Twilio never saw the citizen's
    # message (it came in through another number), so WhatsApp refuses it with 63016 afterwards.
    running = wa_hub(sqlite_hub, fake_twilio)
    try:
        _old_message(sqlite_hub, hours=2)
        (request,) = fake_twilio.requests
        assert "Body" in request and "ContentSid" not in request
        assert [r.status_code for r in fake_twilio.flush_callbacks()] == [204]
    finally:
        running.stop()
    (out,) = outbound(sqlite_hub)
    assert out.delivery_state == "failed" and out.error.startswith("63016") and "24 jam" in out.error


def test_whatsapp_only_hub_signed_on_both_paths_unsigned_refused(sqlite_hub, fake_twilio):  # type: ignore[no-untyped-def]
    running = wa_hub(sqlite_hub, fake_twilio)  # SMS disabled: /webhooks/sms still takes WhatsApp
    try:
        resp, _ = report(fake_twilio, "halo", path="/webhooks/whatsapp", signature=None)
        bad, _ = report(fake_twilio, "halo", signature="AAAA")
        assert resp.status_code == 403 and bad.status_code == 403 and inbound(sqlite_hub) == []
        for path in ("/webhooks/sms", "/webhooks/whatsapp"):
            ok, _ = report(fake_twilio, f"got mampet di Jl. Manyar ({path})", path=path)
            assert ok.status_code == 200 and ok.text == TWIML
    finally:
        running.stop()
    assert sorted(m.channel for m in inbound(sqlite_hub)) == ["whatsapp", "whatsapp"]


class TestWhatsAppContract(ConnectorContract):
    connector = WhatsAppConnector
    fixtures = "whatsapp"
    send_to = CITIZEN
    good_settings = {"enabled": True, "account_sid": ACCOUNT, "auth_token": TOKEN, "from_number": WA_FROM,
                     "template_content_sid": TEMPLATE}
    bad_settings = ({"enabled": True, "account_sid": ACCOUNT, "auth_token": TOKEN, "from_number": WA_FROM,
                     "template_content_sid": "not-a-content-sid"}, "template_content_sid")

    def test_unknown_template_name_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from core.config import ConfigError

        with pytest.raises(ConfigError) as err:
            self._parse({**self.good_settings, "templates": {"akc": "typo"}}, monkeypatch)
        assert "channels.whatsapp.templates" in str(err.value) and "akc" in str(err.value)

    def unreachable_connector(self):  # type: ignore[no-untyped-def]
        from tests.services import free_port

        settings = WhatsAppConnector.Settings(enabled=True, account_sid=ACCOUNT, auth_token=TOKEN,
                                              from_number=WA_FROM, status_callback=False,
                                              api_base=f"http://127.0.0.1:{free_port()}")
        # The citizen wrote a minute ago (instead of a database lookup), so the send reaches the network.
        return WhatsAppConnector(settings, last_inbound=lambda _addr: datetime.now(timezone.utc) - timedelta(minutes=1))
