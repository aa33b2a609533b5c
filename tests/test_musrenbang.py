"""e-Musrenbang end to end: the guided Telegram conversation through the fake Bot API, the hub's
webhook, real Redis and a real RQ worker; verification in the console by each role, a rejection
whose reason reaches the proposer; the public page, the CSV export and the web form."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

import httpx
import pytest
import sklearn
from sqlmodel import select

from core.civic_models import Proposal, ProposalDraft, ProposalEvent
from core.models import Ticket
from tests.console_support import cheap_argon2, login, start_console

FLOWER = (Path(sklearn.__file__).parent / "datasets" / "images" / "flower.jpg").read_bytes()
CHAT = 6281355512345  # a chat id that looks like a phone number: it must never be published


@pytest.fixture(autouse=True)
def _fast_hashes(monkeypatch):  # type: ignore[no-untyped-def]
    cheap_argon2(monkeypatch)


@pytest.fixture
def site(hub):  # type: ignore[no-untyped-def]
    from core.channels import get_connector

    c = start_console(hub, complaints={})
    asyncio.run(get_connector(hub.cfg, "telegram").set_webhook(f"{c.url}/webhooks/telegram"))
    yield c
    c.stop()


def run_worker(hub) -> None:  # type: ignore[no-untyped-def]
    """The hub's real RQ worker in burst mode, without its remote-command channel (which costs almost a
    second per run to open and close; this test drains the queues a dozen times)."""
    from rq import SimpleWorker
    from rq.serializers import JSONSerializer

    from core.queue import QUEUES
    from core.redisconn import get_redis

    class Worker(SimpleWorker):
        def subscribe(self) -> None:
            pass

        def unsubscribe(self) -> None:
            pass

    Worker(list(QUEUES), connection=get_redis(), serializer=JSONSerializer).work(burst=True)


def _say(hub, fake, text: str = "", **extra) -> str:  # type: ignore[no-untyped-def]
    """The citizen sends one message; the worker processes it; returns the bot's answer."""
    before = len(fake.messages_to(CHAT))
    assert fake.deliver(fake.citizen_update(CHAT, text, first_name="Siti", **extra)).status_code == 200
    run_worker(hub)
    sent = fake.messages_to(CHAT)
    assert len(sent) == before + 1, [m["text"] for m in sent[before:]]
    return sent[-1]["text"]


def _propose(hub, fake) -> str:  # type: ignore[no-untyped-def]
    assert "Langkah 1 dari 5" in _say(hub, fake, "/usulan")
    assert "5 sampai 200" in _say(hub, fake, "abc")  # too short: asked again, the step stays
    assert "Langkah 2 dari 5" in _say(hub, fake, "Perbaikan saluran air di RW 03")
    assert "Langkah 3 dari 5" in _say(hub, fake, "Saluran di gang kami mampet tiap hujan, air masuk ke 40 rumah warga")
    assert "foto" in _say(hub, fake, "ini fotonya nanti ya")  # no photo yet
    fake.files["photos/PHOTO-USL-1.jpg"] = (FLOWER, "image/jpeg")
    photo = [{"file_id": "PHOTO-USL-1", "file_unique_id": "u1", "width": 640, "height": 427, "file_size": len(FLOWER)}]
    assert "Langkah 4 dari 5" in _say(hub, fake, photo=photo)
    answer = _say(hub, fake, location={"latitude": -7.3205, "longitude": 112.7687})
    assert "Langkah 5 dari 5" in answer and "Kelurahan" in answer
    assert "tidak kami kenal" in _say(hub, fake, "Atlantis")
    done = _say(hub, fake, "Rungkut Kidul")
    assert "USL-20" in done and "Perbaikan saluran air di RW 03" in done
    return done.split("nomor ", 1)[1].split(":", 1)[0]


def test_telegram_proposal_is_verified_and_the_rejection_reason_reaches_the_proposer(hub, site):  # type: ignore[no-untyped-def]
    fake = site.fake
    number = _propose(hub, fake)
    with hub.session() as s:
        p = s.exec(select(Proposal)).one()
        assert s.exec(select(Ticket)).all() == []  # a proposal conversation never becomes a complaint
        assert s.exec(select(ProposalDraft)).all() == []
    assert p.number == number and p.status == "diajukan" and p.channel == "telegram"
    assert (p.kelurahan, p.kecamatan) == ("Rungkut Kidul", "Rungkut") and p.lat == -7.3205
    from core.media import media_file

    assert media_file(p.photo).read_bytes() == FLOWER

    opr, dsd, dlh, viewer = (login(site.url, u) for u in ("opr", "dsd", "dlh", "viewer"))
    url = f"/console/musrenbang/{p.id}/keputusan"
    assert viewer.post_form(url, {"action": "approve"}).status_code == 403
    assert opr.post(url, data={"action": "approve"}).status_code == 403  # no CSRF token
    assert dsd.post_form(url, {"action": "approve"}).status_code == 403  # kelurahan step is not the OPD's
    r = opr.post_form(url, {"action": "approve", "reason": ""})
    assert r.status_code == 303
    assert "lolos verifikasi kelurahan" in _answer_after_worker(hub, fake)
    assert opr.post_form(url, {"action": "approve"}).status_code == 400  # the kecamatan step must name an OPD
    assert opr.post_form(url, {"action": "approve", "opd": "DSDABM"}).status_code == 303
    assert "Dinas Sumber Daya Air dan Bina Marga" in _answer_after_worker(hub, fake)
    assert dlh.post_form(url, {"action": "reject", "reason": "bukan kami"}).status_code == 403  # another OPD
    assert dsd.post_form(url, {"action": "reject", "reason": ""}).status_code == 400  # reason is mandatory
    with hub.session() as s:
        assert s.get(Proposal, p.id).status == "lolos_kecamatan"
    reason = "Saluran ini sudah masuk program normalisasi 2027"
    assert dsd.post_form(url, {"action": "reject", "reason": reason}).status_code == 303
    final = _answer_after_worker(hub, fake)
    assert "DITOLAK" in final and reason in final and number in final
    with hub.session() as s:
        p = s.get(Proposal, p.id)
        events = s.exec(select(ProposalEvent).where(ProposalEvent.proposal_id == p.id).order_by(ProposalEvent.id)).all()
    assert p.status == "ditolak" and p.reason == reason and p.decided_at is not None
    assert [(e.action, e.actor, e.to_status) for e in events] == [
        ("submitted", f"telegram:{p.contact_id}", "diajukan"), ("approve", "opr", "lolos_kelurahan"),
        ("approve", "opr", "lolos_kecamatan"), ("reject", "dsd", "ditolak")]
    assert dsd.post_form(url, {"action": "accept", "reason": "berubah pikiran"}).status_code == 403  # final

    page = httpx.get(f"{site.url}/musrenbang", params={"kelurahan": "Rungkut Kidul", "status": "ditolak"}).text
    assert number in page and reason in page and f"/musrenbang/foto/{number}" in page
    assert str(CHAT) not in page and "Siti" not in page
    assert httpx.get(f"{site.url}/musrenbang/foto/{number}").content == FLOWER
    assert number not in httpx.get(f"{site.url}/musrenbang", params={"status": "diterima"}).text
    exported = httpx.get(f"{site.url}/musrenbang/ekspor.csv", params={"tahun": p.year})
    rows = list(csv.reader(io.StringIO(exported.text.lstrip("\ufeff"))))
    assert rows[0][0] == "Nomor" and rows[1][0] == number and reason in rows[1] and "Rungkut Kidul" in rows[1]
    assert str(CHAT) not in exported.text and "Siti" not in exported.text


def _answer_after_worker(hub, fake) -> str:  # type: ignore[no-untyped-def]
    before = len(fake.messages_to(CHAT))
    run_worker(hub)
    sent = fake.messages_to(CHAT)
    assert len(sent) == before + 1
    return sent[-1]["text"]


def test_cancel_and_ordinary_complaints_still_become_tickets(sqlite_hub):  # type: ignore[no-untyped-def]
    from core.channels import get_connector

    site = start_console(sqlite_hub, complaints={})
    try:
        asyncio.run(get_connector(sqlite_hub.cfg, "telegram").set_webhook(f"{site.url}/webhooks/telegram"))
        fake = site.fake
        _say(sqlite_hub, fake, "/usulan")
        assert "dibatalkan" in _say(sqlite_hub, fake, "/batal")
        ack = _say(sqlite_hub, fake, "Lampu PJU di Jl. Rungkut Asri Timur mati sudah seminggu")
        assert "ADU-20" in ack
        with sqlite_hub.session() as s:
            assert len(s.exec(select(Ticket)).all()) == 1 and s.exec(select(Proposal)).all() == []
    finally:
        site.stop()


def test_web_form_checks_the_photo_and_stores_nothing_on_bad_input(sqlite_hub):  # type: ignore[no-untyped-def]
    site = start_console(sqlite_hub, complaints={})
    try:
        url = f"{site.url}/musrenbang/usul"
        assert "Ajukan usulan" in httpx.get(url).text
        good = {"title": "Taman bermain anak di balai RW", "kelurahan": "Ketintang", "name": "Pak Joko",
                "phone": "081234567890", "description": "Anak-anak bermain di jalan karena tidak ada taman sama sekali"}
        for files, data, why in (
            ({"photo": ("x.jpg", b"MZ\x90\x00 not an image", "image/jpeg")}, good, "bukan foto"),
            ({}, good, "Lampirkan foto"),
            ({"photo": ("f.jpg", FLOWER, "image/jpeg")}, {**good, "kelurahan": "Atlantis"}, "kelurahan"),
            ({"photo": ("f.jpg", FLOWER, "image/jpeg")}, {**good, "title": "x"}, "Judul"),
        ):
            r = httpx.post(url, data=data, files=files or {"dummy": ("", b"", "text/plain")})
            assert r.status_code == 400 and why in r.text, (why, r.text[:300])
        with sqlite_hub.session() as s:
            assert s.exec(select(Proposal)).all() == []
        r = httpx.post(url, data=good, files={"photo": ("f.jpg", FLOWER, "image/jpeg")})
        assert r.status_code == 303
        mine = httpx.get(site.url + r.headers["location"]).text  # where the proposer follows the decisions
        assert 'data-testid="submitted"' in mine and mine.count('data-testid="proposal"') == 1
        with sqlite_hub.session() as s:
            p = s.exec(select(Proposal)).one()
        assert p.channel == "web" and p.kecamatan == "Gayungan" and p.photo["mime"] == "image/jpeg"
        page = httpx.get(f"{site.url}/musrenbang").text
        assert p.number in page and "Pak Joko" not in page and "081234567890" not in page
        opr = login(site.url, "opr")
        console_page = opr.get("/console/musrenbang").text
        assert "Pak Joko" in console_page  # operators see who proposed it
        viewer_page = login(site.url, "viewer").get("/console/musrenbang").text
        assert p.number in viewer_page and "Pak Joko" not in viewer_page and "081234567890" not in viewer_page
    finally:
        site.stop()
