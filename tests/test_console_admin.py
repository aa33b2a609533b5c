"""Admins' channel switches and OPD catalogue, and @mention notifications, over real HTTP (httpx ->
uvicorn on loopback) with real Redis, SQLite, a real RQ worker, the fake Telegram and X APIs, and
for the pollers a real `aduan connectors` process."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import select

from core.console.models import Mention
from core.models import Event, Message, Ticket
from tests.console_support import SECRET, add_ticket, cheap_argon2, login, start_console
from tests.test_twitter import CITIZEN, connector, fake_x, poll, x_hub  # noqa: F401  (fake_x is a fixture)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _fast_hashes(monkeypatch):  # type: ignore[no-untyped-def]
    cheap_argon2(monkeypatch)


@pytest.fixture
def console(sqlite_hub):  # type: ignore[no-untyped-def]
    c = start_console(sqlite_hub)
    c.fake.webhook = {"url": f"{c.url}/webhooks/telegram", "secret_token": SECRET}
    yield c
    c.stop()


def _with_x(hub, fake, **settings):  # type: ignore[no-untyped-def]
    """The X channel on the fake X API too (test_twitter's set-up), the console on plain http."""
    x_hub(hub, fake, **settings)
    hub.raw["hub"].pop("public_url")  # https would make the session cookie Secure, unusable on loopback http


def _row(html: str, attr: str, value: str) -> str:
    m = re.search(rf'{attr}="{re.escape(value)}".*?</tr>', html, re.S)
    assert m, f"no row {attr}={value}"
    return m.group(0)


def _stored(hub, text: str) -> list[Message]:  # type: ignore[no-untyped-def]
    with hub.session() as s:
        return list(s.exec(select(Message).where(Message.direction == "in", Message.text == text)).all())


# ------------------------------------------------------------------ channels


def test_a_switched_off_channel_refuses_webhooks_but_sends_queued_replies(console, sqlite_hub):  # type: ignore[no-untyped-def]
    admin, opr = login(console.url, "admin"), login(console.url, "opr")
    opr.post_form(f"/console/tickets/{console.tickets['pju']}/reply", {"text": "Petugas PJU berangkat sekarang."})
    assert admin.post_form("/console/admin/channels/telegram/switch", {"on": "0"}).status_code == 303
    row = _row(admin.get("/console/admin/channels").text, "data-channel", "telegram")
    assert "dimatikan" in row and "basis data" in row and "admin" in row and "Nyalakan telegram" in row

    text = "Got di Jl. Manyar Kertoarjo mampet, air meluap ke jalan"
    r = console.fake.deliver(console.fake.citizen_update(5553001, text))
    assert r.status_code == 503 and "disabled" in r.json()["error"] and r.headers["retry-after"]
    assert _stored(sqlite_hub, text) == []
    sqlite_hub.run_worker()  # the reply queued before the switch still goes out
    assert any("berangkat sekarang" in m["text"] for m in console.fake.messages_to(6281234561234))

    assert admin.post_form("/console/admin/channels/telegram/switch", {"on": "1"}).status_code == 303
    row = _row(admin.get("/console/admin/channels").text, "data-channel", "telegram")
    assert "aktif" in row and "config.yaml" in row and "basis data" not in row
    assert console.fake.deliver(console.fake.citizen_update(5553001, text)).status_code == 200
    assert len(_stored(sqlite_hub, text)) == 1
    with sqlite_hub.session() as s:
        events = s.exec(select(Event).where(Event.action.startswith("channel."))).all()
    assert [(e.action, e.actor, e.data["before"], e.data["after"]) for e in events] == [
        ("channel.disable", "admin", True, False), ("channel.enable", "admin", False, True)]
    # a channel config.yaml does not set up cannot be switched on from the console
    r = admin.post_form("/console/admin/channels/sms/switch", {"on": "1"})
    assert r.status_code == 400 and "channels.sms.enabled: false in config.yaml" in r.text


def test_a_switched_off_poller_pauses_and_resumes_from_its_cursor(sqlite_hub, fake_x, wait_for):  # type: ignore[no-untyped-def]
    _with_x(sqlite_hub, fake_x, poll_dms=False)
    console = start_console(sqlite_hub, complaints={})
    first = fake_x.mention(CITIZEN, "@SapawargaSby trotoar Jl. Tunjungan rusak, pejalan kaki jatuh")
    log = open(sqlite_hub.tmp / "connectors.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "connectors"], cwd=ROOT, env=sqlite_hub.env(),
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _stored(sqlite_hub, first["text"]), timeout=30)
        admin = login(console.url, "admin")
        assert admin.post_form("/console/admin/channels/twitter/switch", {"on": "0"}).status_code == 303
        time.sleep(5)  # the connectors process notices within its check interval plus the cache's TTL
        polls = len(fake_x.calls("/mentions"))
        second = fake_x.mention(CITIZEN, "@SapawargaSby lampu taman Bungkul mati semua")
        time.sleep(4)
        assert len(fake_x.calls("/mentions")) == polls  # paused: not one read spent
        assert _stored(sqlite_hub, second["text"]) == []
        assert admin.post_form("/console/admin/channels/twitter/switch", {"on": "1"}).status_code == 303
        wait_for(lambda: _stored(sqlite_hub, second["text"]), timeout=20)
        resumed = fake_x.calls("/mentions")[polls]
        assert resumed["params"].get("since_id") == first["id"]  # from the stored cursor, nothing re-read
        assert len(_stored(sqlite_hub, first["text"])) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
        console.stop()
    assert "polling paused" in (sqlite_hub.tmp / "connectors.log").read_text()


def test_channels_page_shows_the_x_read_budget_left(sqlite_hub, fake_x):  # type: ignore[no-untyped-def]
    _with_x(sqlite_hub, fake_x, monthly_read_budget=500)
    console = start_console(sqlite_hub, complaints={})
    try:
        fake_x.mention(CITIZEN, "@SapawargaSby jalan berlubang di Jl. Raya Menur")
        poll(connector(sqlite_hub), lambda: len(fake_x.calls("/dm_events")) >= 1)
        admin = login(console.url, "admin")
        row = _row(admin.get("/console/admin/channels").text, "data-channel", "twitter")
        assert "498 dari 500 tersisa" in row and "terpakai 2" in row  # 1 mention + 1 for the empty DM page
        admin.post_form("/console/lang", {"lang": "en"})
        assert "498 of 500 left" in _row(admin.get("/console/admin/channels").text, "data-channel", "twitter")
    finally:
        console.stop()


# ------------------------------------------------------------------ the OPD catalogue


def _ticket_of(hub, text: str) -> Ticket:  # type: ignore[no-untyped-def]
    with hub.session() as s:
        msg = s.exec(select(Message).where(Message.text == text)).one()
        return s.get(Ticket, msg.ticket_id)


def test_admin_adds_an_opd_routable_at_once_then_retires_and_restores_it(console, sqlite_hub):  # type: ignore[no-untyped-def]
    admin, opr = login(console.url, "admin"), login(console.url, "opr")
    for form, problem in (({"code": "dinas wisata", "name": "Dinas Pariwisata"}, "opds.code: String should match pattern"),
                          ({"code": "DISPAR", "name": "DP"}, "opds.name: String should have at least 3 characters"),
                          ({"code": "DLH", "name": "Dinas Lingkungan Hidup lagi"}, "opds: code DLH appears more than once")):
        r = admin.post_form("/console/admin/opds", form)
        assert r.status_code == 400 and problem in r.text, r.text[-2000:]
    r = admin.post_form("/console/admin/opds", {"code": "DISBUDPAR", "name": "Dinas Kebudayaan dan Pariwisata",
                                                "keywords": "kebun binatang, museum, wisata"})
    assert r.status_code == 303
    row = _row(admin.get("/console/admin/opds").text, "data-opd", "DISBUDPAR")
    assert "basis data" in row and "kebun binatang, museum, wisata" in row and "aktif" in row

    zoo = "Kandang di kebun binatang Wonokromo kotor, hewannya kurus tidak terurus"
    assert console.fake.deliver(console.fake.citizen_update(5554001, zoo)).status_code == 200
    sqlite_hub.run_worker()
    assert _ticket_of(sqlite_hub, zoo).opd_code == "DISBUDPAR"  # its keywords route, no retraining
    assert "Dinas Kebudayaan dan Pariwisata" in console.fake.messages_to(5554001)[-1]["text"]
    page = opr.get(f"/console/tickets/{console.tickets['sampah']}").text
    assert '<option value="DISBUDPAR">' in page
    assert opr.post_form(f"/console/tickets/{console.tickets['sampah']}/reroute",
                         {"opd": "DISBUDPAR", "reason": "sampah di area wisata"}).status_code == 303

    assert admin.post_form("/console/admin/opds/DISBUDPAR/active", {"active": "0"}).status_code == 303
    assert "nonaktif" in _row(admin.get("/console/admin/opds").text, "data-opd", "DISBUDPAR")
    museum = "Atap museum kota bocor, koleksi bisa rusak kena hujan"
    console.fake.deliver(console.fake.citizen_update(5554002, museum))
    sqlite_hub.run_worker()
    retired = _ticket_of(sqlite_hub, museum)
    assert retired.opd_code is None and retired.triage  # nothing new for a retired OPD: triage decides
    assert _ticket_of(sqlite_hub, zoo).opd_code == "DISBUDPAR"  # its tickets keep it
    page = opr.get(f"/console/tickets/{retired.id}").text
    assert '<option value="DISBUDPAR">' not in page and '<option value="DLH">' in page
    r = opr.post_form(f"/console/tickets/{retired.id}/reroute", {"opd": "DISBUDPAR", "reason": "museum"})
    assert r.status_code == 400 and "dinonaktifkan" in r.text

    assert admin.post_form("/console/admin/opds/DISBUDPAR/active", {"active": "1"}).status_code == 303
    assert opr.post_form(f"/console/tickets/{retired.id}/reroute", {"opd": "DISBUDPAR", "reason": "museum"}).status_code == 303
    # its keywords are edited on the settings page like any OPD's
    assert admin.post_form("/console/admin/settings", {"key": "opds.DISBUDPAR.keywords",
                                                       "value": "kebun binatang, museum, taman hiburan"}).status_code == 303
    assert "basis data" in _row(admin.get("/console/admin/settings").text, "data-key", "opds.DISBUDPAR.keywords")
    ride = "Wahana di taman hiburan Kenjeran macet, anak-anak terjebak di atas"
    console.fake.deliver(console.fake.citizen_update(5554004, ride))
    sqlite_hub.run_worker()
    assert _ticket_of(sqlite_hub, ride).opd_code == "DISBUDPAR"
    with sqlite_hub.session() as s:
        events = s.exec(select(Event).where(Event.action.startswith("opd."))).all()
    assert [(e.action, e.actor) for e in events] == [("opd.add", "admin"), ("opd.deactivate", "admin"),
                                                     ("opd.restore", "admin")]
    assert events[0].data["after"]["name"] == "Dinas Kebudayaan dan Pariwisata"


def test_retiring_an_opd_from_config_yaml_sends_its_complaints_to_triage(console, sqlite_hub):  # type: ignore[no-untyped-def]
    admin = login(console.url, "admin")
    assert admin.post_form("/console/admin/opds/DLH/active", {"active": "0"}).status_code == 303
    row = _row(admin.get("/console/admin/opds").text, "data-opd", "DLH")
    assert "nonaktif" in row and "config.yaml" in row and "admin" in row
    text = "Sampah di TPS Menur belum diangkut seminggu, bau sekali sampai ke rumah warga"
    console.fake.deliver(console.fake.citizen_update(5554003, text))
    sqlite_hub.run_worker()
    t = _ticket_of(sqlite_hub, text)
    assert t.opd_code is None and t.triage
    assert "OPD DLH nonaktif" in login(console.url, "opr").get(f"/console/tickets/{t.id}").text  # the reason shown
    with sqlite_hub.session() as s:
        assert s.get(Ticket, console.tickets["sampah"]).opd_code == "DLH"  # history untouched


# ------------------------------------------------------------------ @mentions


def _badge(html: str) -> str | None:
    m = re.search(r'data-testid="mentions-badge"[^>]*>(\d+)<', html)
    return m.group(1) if m else None


def test_mentions_notify_who_may_see_the_ticket_and_tell_the_author_who_was_not(console, sqlite_hub):  # type: ignore[no-untyped-def]
    opr, dsd, dlh = login(console.url, "opr"), login(console.url, "dsd"), login(console.url, "dlh")
    darmo = console.tickets["darmo"]  # a DSDABM ticket
    r = opr.post_form(f"/console/tickets/{darmo}/note", {"text": "@dsd @dlh @viewer tolong cek lubangnya hari ini"})
    assert r.status_code == 303 and "not_told=dlh,viewer" in r.headers["location"]
    page = opr.get(r.headers["location"]).text
    assert "Tidak diberi tahu (tidak berhak melihat laporan ini): @dlh, @viewer" in page
    assert re.search(r'data-testid="not-delivered">· tidak diberi tahu: @dlh, @viewer', page)

    assert _badge(dsd.get("/console/overview").text) == "1"
    assert _badge(dlh.get("/console/overview").text) is None
    assert "Belum ada yang menyebut Anda." in dlh.get("/console/mentions").text
    listing = dsd.get("/console/mentions").text
    assert console.numbers["darmo"] in listing and "tolong cek lubangnya" in listing and "belum dibaca" in listing
    with sqlite_hub.session() as s:
        mention = s.exec(select(Mention)).one()
    assert dlh.get(f"/console/mentions/{mention.id}").status_code == 404  # not theirs
    r = dsd.get(f"/console/mentions/{mention.id}")
    assert r.status_code == 303 and r.headers["location"] == f"/console/tickets/{darmo}#notes"
    assert _badge(dsd.get("/console/overview").text) is None
    assert "belum dibaca" not in dsd.get("/console/mentions").text

    # opening the ticket itself also reads it; a ticket re-routed away drops out of the officer's list
    opr.post_form(f"/console/tickets/{darmo}/note", {"text": "@dsd ada foto baru dari warga"})
    assert _badge(dsd.get("/console").text) == "1"
    dsd.get(f"/console/tickets/{darmo}")
    assert _badge(dsd.get("/console").text) is None
    opr.post_form(f"/console/tickets/{darmo}/note", {"text": "@dsd satu lagi"})
    opr.post_form(f"/console/tickets/{darmo}/reroute", {"opd": "DLH", "reason": "ternyata saluran"})
    assert _badge(dsd.get("/console").text) is None and console.numbers["darmo"] not in dsd.get("/console/mentions").text


def test_a_mention_also_goes_to_the_users_notify_target(console, sqlite_hub):  # type: ignore[no-untyped-def]
    from core.console.models import User

    admin, opr = login(console.url, "admin"), login(console.url, "opr")
    with sqlite_hub.session() as s:
        dsd_id = s.exec(select(User).where(User.username == "dsd")).one().id
    r = admin.post_form(f"/console/admin/users/{dsd_id}", {"op": "notify", "channel": "fax", "address": "1"})
    assert r.status_code == 400 and "notify.channel: unknown channel &#39;fax&#39;" in r.text
    r = admin.post_form(f"/console/admin/users/{dsd_id}", {"op": "notify", "channel": "telegram", "address": "777001"})
    assert r.status_code == 303
    pju = console.tickets["pju"]
    opr.post_form(f"/console/tickets/{pju}/note", {"text": "@dsd warga kirim nomor rumah: Jl. Rungkut Asri 12"})
    sqlite_hub.run_worker()
    [sent] = console.fake.messages_to(777001)
    assert console.numbers["pju"] in sent["text"] and "opr" in sent["text"] and f"/console/tickets/{pju}" in sent["text"]
    assert "Rungkut Asri 12" not in sent["text"]  # the note itself stays in the console
    assert _badge(login(console.url, "dsd").get("/console").text) == "1"  # and the console has it too
    with sqlite_hub.session() as s:
        ev = s.exec(select(Event).where(Event.action == "user.notify")).one()
        assert ev.actor == "admin" and ev.data["after"] == {"channel": "telegram", "address": "777001"}
        assert s.exec(select(Mention)).one().message_id is not None
    # an officer mentioned on another OPD's ticket gets nothing, on either path
    opr.post_form(f"/console/tickets/{add_ticket(sqlite_hub, 'DLH', 'pohon tumbang')}/note", {"text": "@dsd lihat"})
    sqlite_hub.run_worker()
    assert len(console.fake.messages_to(777001)) == 1
