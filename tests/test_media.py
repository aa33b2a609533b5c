"""Photo evidence: real photos fetched through python-telegram-bot (fake Bot API) and over HTTP (fake
Instagram CDN), checked by their bytes, stored by sha256, refusals recorded; the message itself is kept."""

from __future__ import annotations

import hashlib
import struct
import zlib
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sklearn
from sqlmodel import select

from connectors.fakes import serve
from connectors.fakes.instagram import InstagramState, create_app as ig_app
from connectors.fakes.telegram import TelegramState, create_app as tg_app
from connectors.telegram import TelegramConnector
from core.message import Attachment, InboundMessage
from core.models import Event, Message, Ticket

IMAGES = Path(sklearn.__file__).parent / "datasets" / "images"
FLOWER = (IMAGES / "flower.jpg").read_bytes()  # real JPEG photos: 143 kB, 640x427
CHINA = (IMAGES / "china.jpg").read_bytes()  # 197 kB
TOKEN = "123456:TEST-token"


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims 10 gigapixels: decoding it would exhaust memory."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + chunk(b"IEND", b"")


@pytest.fixture
def fakes():  # type: ignore[no-untyped-def]
    tg = TelegramState(token=TOKEN)
    ig = InstagramState()
    running = [serve(tg_app(tg)), serve(ig_app(ig))]
    tg.url, ig.url = running[0].url, running[1].url  # type: ignore[attr-defined]
    yield tg, ig
    for r in running:
        r.stop()


def configure(hub, tg, **media):  # type: ignore[no-untyped-def]
    hub.mp.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    hub.mp.setenv("TELEGRAM_SECRET_TOKEN", "secret-1")
    if media:
        hub.raw["media"] = media
    hub.configure(telegram={"enabled": True, "api_base": tg.url})
    return hub


def telegram_photo_message(tg: TelegramState, file_id: str, data: bytes, caption: str) -> int:
    from core.intake import accept

    tg.files[f"photos/{file_id}.jpg"] = (data, "image/jpeg")
    update = tg.citizen_update(5551234, caption=caption, photo=[
        {"file_id": file_id + "s", "file_unique_id": "s1", "width": 90, "height": 60, "file_size": 900},
        {"file_id": file_id, "file_unique_id": "b1", "width": 640, "height": 427, "file_size": len(data)}])
    return accept(TelegramConnector.parse(update)).message_id


def evidence(hub, message_id: int) -> list[dict]:  # type: ignore[no-untyped-def]
    with hub.session() as s:
        return [a.get("evidence") for a in s.get(Message, message_id).attachments]


def test_telegram_photo_is_kept_with_its_sha256_through_the_queue(hub, fakes):  # type: ignore[no-untyped-def]
    tg, _ = fakes
    configure(hub, tg)
    from core.media import enqueue_fetch, media_file

    mid = telegram_photo_message(tg, "AgACphoto1", FLOWER, "Jalan berlubang di Jl. Raya Darmo, ini fotonya")
    hub.run_worker()  # the complaint is processed, and the worker queues the photo fetch itself
    (ev,) = evidence(hub, mid)
    assert ev["sha256"] == hashlib.sha256(FLOWER).hexdigest() and ev["bytes"] == len(FLOWER)
    assert ev["mime"] == "image/jpeg" and (ev["width"], ev["height"]) == (640, 427)
    assert media_file(ev).read_bytes() == FLOWER  # the evidence survives the chat being deleted
    with hub.session() as s:
        ticket = s.exec(select(Ticket)).one()
        assert s.exec(select(Event).where(Event.action == "media.stored")).one().ticket_id == ticket.id
    assert enqueue_fetch(mid) is False  # fetched once


def test_spoofed_and_oversized_refused_with_reason_rest_of_message_kept(sqlite_hub, fakes):  # type: ignore[no-untyped-def]
    tg, ig = fakes
    hub = configure(sqlite_hub, tg, max_bytes=150_000)
    from core.intake import accept
    from core.media import fetch_message_media

    ig.images["media/good.jpg"] = (FLOWER, "image/jpeg")
    ig.images["media/fake.jpg"] = (b"<!DOCTYPE html><html><script>steal()</script></html>", "image/jpeg")
    ig.images["media/exe.jpg"] = (b"MZ\x90\x00" + b"\x00" * 200, "image/jpeg")
    ig.images["media/big.jpg"] = (CHINA, "image/jpeg")  # 197 kB > the 150 kB cap
    ig.images["media/bomb.png"] = (png_bomb(), "image/png")
    refs = [f"{ig.url}/media/{n}" for n in ("good.jpg", "fake.jpg", "exe.jpg", "big.jpg", "bomb.png", "gone.jpg")]
    text = "@surabaya sampah menumpuk di TPS Keputih sudah seminggu"
    msg = InboundMessage(channel="telegram", external_id="ig-like-1", sender="5550009", text=text,
                         received_at=datetime.now(timezone.utc),
                         attachments=[Attachment(kind="photo", ref=r, mime_type="image/jpeg") for r in refs])
    mid = accept(msg).message_id
    hub.run_worker()
    fetch_message_media(mid, hub.cfg)
    good, fake, exe, big, bomb, gone = evidence(hub, mid)
    assert good["mime"] == "image/jpeg" and good["sha256"] == hashlib.sha256(FLOWER).hexdigest()
    assert "not a JPEG, PNG or WebP" in fake["refused"] and "HTML" in fake["refused"]
    assert "executable" in exe["refused"]
    assert "too large" in big["refused"]
    assert "decompression bomb" in bomb["refused"]
    assert "no longer available (HTTP 404)" in gone["refused"]
    stored = list((hub.data_dir / "media").iterdir())
    assert [p.name for p in stored] == [f"{good['sha256']}.jpg"]  # nothing refused reaches the disk
    with hub.session() as s:
        row = s.get(Message, mid)
        assert row.text == text and row.state == "processed" and row.ticket_id is not None
        assert [a["ref"] for a in row.attachments] == refs


def test_telegram_file_over_the_cap_is_not_downloaded(sqlite_hub, fakes):  # type: ignore[no-untyped-def]
    tg, _ = fakes
    hub = configure(sqlite_hub, tg, max_bytes=50_000)
    from core.media import fetch_message_media

    mid = telegram_photo_message(tg, "AgACbig", FLOWER, "banjir di Jl. Kapas Krampung")
    (ev,) = fetch_message_media(mid, hub.cfg)
    assert ev["refused"].startswith("too large: 142987 bytes")
    assert not (hub.data_dir / "media").exists() or not any((hub.data_dir / "media").iterdir())


def test_unreachable_provider_is_retried_later(sqlite_hub, fakes):  # type: ignore[no-untyped-def]
    tg, _ = fakes
    hub = configure(sqlite_hub, tg)
    from core.intake import accept
    from core.media import Transient, fetch_message_media
    from tests.services import free_port

    msg = InboundMessage(channel="instagram", external_id="post:X1", sender="warga", text="foto",
                         received_at=datetime.now(timezone.utc),
                         attachments=[Attachment(kind="photo", ref=f"http://127.0.0.1:{free_port()}/a.jpg")])
    mid = accept(msg).message_id
    with pytest.raises(Transient):
        fetch_message_media(mid, hub.cfg)
    assert evidence(hub, mid) == [None]  # nothing recorded: the retry will try again
