"""Personal data under UU 27/2022: retention anonymisation, and citizens' export and erasure requests,
on SQLite and PostgreSQL, through the real pipeline, the real CLI and a real RQ worker."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel, select
from typer.testing import CliRunner

from core.message import InboundMessage
from core.models import Citizen, Contact, Event, Message, Ticket

PHONE = "+6281234567890"
PHONE_DIGITS = "81234567890"  # inside every way of writing it: +62812…, 62812…, 0812…
NOW = datetime.now(timezone.utc)
OLD = NOW - timedelta(days=31 * 30)  # ~31 months ago: past the 24-month retention


def report(hub, ext: str, sender: str, text: str, when: datetime, display: str | None = None,  # type: ignore[no-untyped-def]
           channel: str = "sms", **extra) -> Message:
    """Store and process one message with the real intake and pipeline (acknowledgement queued)."""
    from core.db import session_scope
    from core.intake import store
    from core.pipeline import process

    msg = InboundMessage(channel=channel, external_id=ext, sender=sender, sender_display=display, text=text,
                         received_at=when, raw={"From": sender, "ProfileName": display, "Body": text}, **extra)
    with session_scope() as s:
        row, _ = store(s, msg)
        process(s, hub.cfg, row.id, notify=True)
        return row


def finish(hub, message_id: int, status: str = "closed", when: datetime = OLD) -> None:  # type: ignore[no-untyped-def]
    """Close the message's ticket as it was closed `when` (retention counts from the last activity)."""
    with hub.session() as s:
        t = s.get(Ticket, s.get(Message, message_id).ticket_id)
        t.status, t.created_at, t.updated_at = status, when - timedelta(days=3), when
        t.closed_at = t.resolved_at = when
        for m in s.exec(select(Message).where(Message.ticket_id == t.id)).all():
            m.created_at = m.received_at = when - timedelta(days=3)
        s.add(t)
        s.commit()


def add_photo(hub, message_id: int, data: bytes) -> Path:  # type: ignore[no-untyped-def]
    """The evidence entry core.media.store() adds once it has fetched a photo."""
    digest = hashlib.sha256(data).hexdigest()
    path = hub.data_dir / "media" / f"{digest}.jpg"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    with hub.session() as s:
        m = s.get(Message, message_id)
        m.attachments = [{**(m.attachments or [{"kind": "photo", "ref": "x"}])[0],
                          "evidence": {"path": f"media/{path.name}", "sha256": digest, "bytes": len(data), "mime": "image/jpeg"}}]
        s.add(m)
        s.commit()
    return path


def dump(hub) -> str:  # type: ignore[no-untyped-def]
    """Every value of every column of every table, as one searchable text."""
    import core.tables  # noqa: F401

    from core.db import get_engine

    parts = []
    with get_engine().connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            for row in conn.execute(sa.select(table)).all():
                parts.extend(json.dumps(v, default=str, ensure_ascii=False) for v in row)
    return "\n".join(parts)


def stats(hub) -> Counter:  # type: ignore[no-untyped-def]
    with hub.session() as s:
        return Counter((t.opd_code, t.kecamatan, t.kelurahan, t.status) for t in s.exec(select(Ticket)).all())


@pytest.fixture
def city(hub):  # type: ignore[no-untyped-def]
    """Budi: two old, closed complaints by SMS (his number, name and e-mail inside the text), with a photo
    and a pin. Siti: a recent open complaint on Telegram. Andi: an old complaint whose case is still open."""
    hub.mp.setenv("ADUAN_PSEUDONYM_KEY", "test-pseudonym-key")
    b1 = report(hub, "SMb1", PHONE, "Jalan berlubang besar di Jl. Rungkut Asri Timur Kelurahan Rungkut Kidul, "
                "saya Budi Santoso, hubungi 0812-3456-7890 atau budi.s@example.com", OLD, "Budi Santoso",
                attachments=[{"kind": "photo", "ref": "https://api.twilio.com/Media/ME1", "mime_type": "image/jpeg",
                              "name": "budi-rumah.jpg"}],
                location={"lat": -7.3291234, "lon": 112.7812345, "label": "Rumah Budi, Jl. Rungkut Asri 5"})
    b2 = report(hub, "SMb2", PHONE, "Sampah menumpuk di TPS Kelurahan Gubeng tidak diangkut seminggu, "
                "NIK saya 3578012345678901", OLD + timedelta(days=10), "Budi Santoso")
    add_photo(hub, b1.id, b"photo of Budi's street, his house in view")
    finish(hub, b1.id)
    finish(hub, b2.id, "resolved", OLD + timedelta(days=12))
    siti = report(hub, "5550001:17", "5550001", "Lampu PJU di Jl. Kertajaya Kelurahan Gubeng mati sudah seminggu",
                  NOW - timedelta(days=2), "Siti", channel="telegram")
    andi = report(hub, "SMa1", "+6285711112222", "Saluran got mampet di Kelurahan Wonokromo, banjir tiap hujan",
                  OLD, "Andi")
    with hub.session() as s:  # Andi's case is old but still open: it must keep its reporter
        t = s.get(Ticket, s.get(Message, andi.id).ticket_id)
        t.created_at = t.updated_at = OLD
        s.add(t)
        for m in s.exec(select(Message).where(Message.contact_id == andi.contact_id)).all():
            m.created_at = m.received_at = OLD
            s.add(m)
        s.commit()
    return {"budi": [b1, b2], "siti": siti, "andi": andi}


def test_retention_anonymises_old_identities_and_keeps_statistics(hub, city):  # type: ignore[no-untyped-def]
    from core.privacy import anonymise_expired

    before_stats, before = stats(hub), dump(hub)
    assert PHONE_DIGITS in before and "Budi" in before and "budi.s@example.com" in before
    assert any(k[2] for k in before_stats), "the fixture must produce kelurahan-level statistics"
    with hub.session() as s:
        siti_before = s.get(Contact, city["siti"].contact_id).model_dump()
        andi_msg_before = s.get(Message, city["andi"].id).model_dump()

    from core.db import session_scope

    with session_scope() as s:
        counts = anonymise_expired(s, hub.cfg)
    assert counts.contacts == 1 and counts.messages >= 2 and counts.tickets == 2

    after = dump(hub)
    assert PHONE_DIGITS not in after and "3456-7890" not in after
    assert "Budi" not in after and "budi.s@example.com" not in after and "3578012345678901" not in after
    assert "112.7812345" not in after and "budi-rumah.jpg" not in after
    assert not list((hub.data_dir / "media").iterdir())  # the stored photo of a finished case is deleted
    assert stats(hub) == before_stats  # counts per OPD, kecamatan, kelurahan and status unchanged
    with hub.session() as s:
        budi = s.get(Contact, city["budi"][0].contact_id)
        assert budi.address.startswith("anon-") and budi.display_name is None
        m1 = s.get(Message, city["budi"][0].id)
        assert "Jalan berlubang besar di Jl. Rungkut Asri Timur" in m1.text  # the complaint stays
        assert "[telepon]" in m1.text and "[email]" in m1.text and "[nama]" in m1.text
        assert m1.raw is None and m1.sender_display is None
        assert m1.location == {"lat": -7.329, "lon": 112.781}
        assert m1.attachments == [{"kind": "photo", "mime_type": "image/jpeg", "size": None, "removed": True}]
        t1 = s.get(Ticket, m1.ticket_id)
        assert t1.number and t1.opd_code == "DSDABM" and t1.closed_at is not None
        # Open or recent cases keep their reporter, byte for byte.
        assert s.get(Contact, city["siti"].contact_id).model_dump() == siti_before
        assert s.get(Message, city["andi"].id).model_dump() == andi_msg_before
        assert s.get(Contact, city["andi"].contact_id).address == "+6285711112222"
        ev = s.exec(select(Event).where(Event.action == "privacy.anonymised")).one()
        assert ev.data["contacts"] == 1 and PHONE_DIGITS not in json.dumps(ev.data)

    with session_scope() as s:  # idempotent: a second night changes nothing
        assert anonymise_expired(s, hub.cfg).contacts == 0
    assert dump(hub) == after


def test_pseudonym_is_stable_for_the_same_key(hub, city):  # type: ignore[no-untyped-def]
    """With ADUAN_PSEUDONYM_KEY, an anonymised identity keeps one pseudonym (repeat-reporter statistics)."""
    from core.privacy import pseudonym

    hub.run_worker()  # nothing queued: anonymisation runs through the nightly job below
    from core.queue import get_queue

    get_queue("maintenance").enqueue("workers.jobs.privacy_anonymise")
    hub.run_worker()
    with hub.session() as s:
        budi = s.get(Contact, city["budi"][0].contact_id)
        assert budi.address == pseudonym("sms", PHONE)
        assert budi.opted_out  # nothing can be delivered to a pseudonym
        assert s.exec(select(Event).where(Event.action == "privacy.anonymised")).one().actor == "scheduler"


def test_nightly_slot_schedules_the_retention_job(sqlite_hub):  # type: ignore[no-untyped-def]
    from core.queue import get_queue
    from core.scheduler import tick

    two_am_wib = datetime(2026, 11, 30, 19, 0, tzinfo=timezone.utc)  # 02:00 in Asia/Jakarta
    ids = tick(sqlite_hub.cfg, now=two_am_wib)
    assert "privacy-20261201" in ids
    get_queue("maintenance").empty()  # don't run the nightly training here


def test_export_holds_the_persons_messages_and_nobody_elses(hub, city):  # type: ignore[no-untyped-def]
    from core.db import session_scope
    from core.privacy import export_person

    # Budi also writes on Telegram; an operator linked both identities to one Citizen.
    tg = report(hub, "777001:5", "777001", "Lampu lalu lintas di perempatan Jl. Raya Darmo mati", NOW, "budi_s",
                channel="telegram")
    with session_scope() as s:
        cit = Citizen(display_name="Budi Santoso", created_at=NOW)
        s.add(cit)
        s.flush()
        for cid in (city["budi"][0].contact_id, tg.contact_id):
            s.get(Contact, cid).citizen_id = cit.id

    with session_scope() as s:
        doc = export_person(s, hub.cfg, "0812 3456 7890")  # as the citizen writes it
    text = json.dumps(doc, ensure_ascii=False)
    assert {(c["channel"], c["address"]) for c in doc["contacts"]} == {("sms", PHONE), ("telegram", "777001")}
    inbound = [m for m in doc["messages"] if m["direction"] == "in"]
    assert {m["external_id"] for m in inbound} == {"SMb1", "SMb2", "777001:5"}
    assert any(m["direction"] == "out" and m["ticket"] for m in doc["messages"])  # the acknowledgements
    assert "budi.s@example.com" in text and doc["citizens"][0]["display_name"] == "Budi Santoso"
    assert "Kertajaya" not in text and "5550001" not in text  # Siti's
    assert "mampet" not in text and "85711112222" not in text  # Andi's
    assert len(doc["tickets"]) == 3 and all(t["number"].startswith("ADU-") for t in doc["tickets"])
    first = next(m for m in inbound if m["external_id"] == "SMb1")
    assert first["received_at"] == (OLD - timedelta(days=3) + timedelta(hours=7)).strftime("%Y-%m-%d %H:%M:%S WIB")


def test_erase_on_request_then_export_finds_nothing(hub, city):  # type: ignore[no-untyped-def]
    from core.cli import app
    from core.db import session_scope
    from core.replies import queue_reply

    # A recent, still open complaint of Budi's: it must keep working for the OPD after the erasure.
    open_msg = report(hub, "SMb3", PHONE, "Pohon tumbang menutup Jl. Manyar Kertoarjo, Budi Santoso 081234567890",
                      NOW - timedelta(hours=3), "Budi Santoso")
    photo = add_photo(hub, open_msg.id, b"fallen tree blocking the road")
    runner = CliRunner()
    res = runner.invoke(app, ["citizen", "erase", "081234567890", "--reason", "permohonan REQ-7"], input="n\n")
    assert res.exit_code == 1 and "cancelled" in res.output
    assert PHONE_DIGITS in dump(hub)  # declined: nothing changed

    res = runner.invoke(app, ["citizen", "erase", "081234567890", "--reason", "permohonan REQ-7", "--yes"])
    assert res.exit_code == 0, res.output
    assert "1 contact(s)" in res.output
    after = dump(hub)
    assert PHONE_DIGITS not in after and "Budi" not in after

    res = runner.invoke(app, ["citizen", "export", "081234567890"])
    assert res.exit_code == 2 and "nobody with the address" in res.output and "CHANNEL:ADDRESS" in res.output

    with session_scope() as s:
        msg = s.get(Message, open_msg.id)
        ticket = s.get(Ticket, msg.ticket_id)
        assert ticket.status == "routed" and ticket.opd_code == "DLH"  # the OPD still has the case
        assert "Pohon tumbang menutup Jl. Manyar Kertoarjo" in msg.text
        assert photo.exists() and msg.attachments[0]["evidence"]["path"] == f"media/{photo.name}"  # the OPD's evidence
        contact = s.get(Contact, msg.contact_id)
        assert contact.opted_out and contact.opted_out_reason == "erased on request"
        later = queue_reply(s, hub.cfg, msg, "resolved", key="after-erase", ticket=ticket.number, opd="DLH",
                            response="Sudah dipotong.")
        assert later.delivery_state == "suppressed"  # the OPD's answer cannot reach a deleted identity
        pending = s.exec(select(Message).where(Message.contact_id == contact.id, Message.direction == "out",
                                               Message.delivery_state == "pending")).all()
        assert pending == []
        ev = s.exec(select(Event).where(Event.action == "privacy.erased")).one()
        assert ev.actor.startswith("os:") and ev.data["reason"] == "permohonan REQ-7" and ev.data["contacts"] == 1
        # Others are untouched.
        assert s.get(Contact, city["siti"].contact_id).address == "5550001"


def test_export_cli_writes_a_private_file_and_names_unknown_people(sqlite_hub, tmp_path):  # type: ignore[no-untyped-def]
    from core.cli import app

    report(sqlite_hub, "SMx1", PHONE, "Air PDAM mati sejak pagi di Kelurahan Gubeng", NOW, "Budi")
    out = tmp_path / "budi.json"
    res = CliRunner().invoke(app, ["citizen", "export", "+62 812-3456-7890", "--out", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["messages"][0]["text"].startswith("Air PDAM mati") and out.stat().st_mode & 0o077 == 0
    with sqlite_hub.session() as s:  # audited, without the personal data itself
        ev = s.exec(select(Event).where(Event.action == "privacy.exported")).one()
        assert ev.actor.startswith("os:") and ev.data["messages"] >= 1 and PHONE_DIGITS not in json.dumps(ev.data)
    res = CliRunner().invoke(app, ["citizen", "export", "telegram:999"])
    assert res.exit_code == 2 and "nobody with the address 'telegram:999'" in res.output


def test_anonymise_cli_dry_run_counts_without_changing(hub, city):  # type: ignore[no-untyped-def]
    from core.cli import app

    before = dump(hub)
    res = CliRunner().invoke(app, ["privacy", "anonymise", "--dry-run"])
    assert res.exit_code == 0 and "1 identity(ies) would be anonymised" in res.output
    assert dump(hub) == before
    res = CliRunner().invoke(app, ["privacy", "anonymise"])
    assert res.exit_code == 0 and "1 identity(ies) anonymised" in res.output
    assert PHONE_DIGITS not in dump(hub)
