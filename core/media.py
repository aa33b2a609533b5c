"""Photo evidence: fetch the photos attached to citizens' messages and keep them with the ticket.

A citizen's photo (a Telegram photo, an Instagram post) is the best evidence an OPD gets, and
it disappears when the post is deleted or the provider's link expires. So after a message is
processed, `enqueue_fetch(message_id)` queues a job that downloads each photo (size-capped),
checks it is really a JPEG, PNG or WebP by its bytes (never by the declared content type),
refuses decompression bombs by reading the image header's dimensions before anything decodes
it, and stores it as data_dir()/media/<sha256>.<ext>. The outcome is written on the message's
attachment entry under "evidence" ({path, sha256, bytes, mime} or {refused: reason}); the rest of
the message is untouched either way.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from core.config import AppConfig, data_dir, get_config

log = logging.getLogger(__name__)

FETCH_JOB = "core.media.fetch_job"


class Refused(Exception):
    """The photo will not be kept (too large, not an image, a bomb, gone): the reason is recorded."""


class Transient(Exception):
    """The provider could not be reached now: the job is retried."""


@dataclass
class Image:
    mime: str
    ext: str
    width: int
    height: int


# ------------------------------------------------------------------ content checks (pure)


def sniff(data: bytes) -> Image:
    """Identify JPEG/PNG/WebP from the bytes and read the dimensions from the header; Refused otherwise."""
    if data[:3] == b"\xff\xd8\xff":
        w, h = _jpeg_size(data)
        return Image("image/jpeg", "jpg", w, h)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise Refused("corrupt PNG (no IHDR header)")
        w, h = struct.unpack(">II", data[16:24])
        return Image("image/png", "png", w, h)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        w, h = _webp_size(data)
        return Image("image/webp", "webp", w, h)
    head = data[:16]
    what = "HTML" if head.lstrip().lower().startswith((b"<!doctype", b"<html")) else \
        "an executable" if head[:2] == b"MZ" or head[:4] == b"\x7fELF" else "unknown content"
    raise Refused(f"not a JPEG, PNG or WebP image (the bytes are {what})")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + length
    raise Refused("corrupt JPEG (no frame header)")


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8 " and len(data) >= 30:
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    raise Refused("corrupt WebP (unknown chunk)")


def check(data: bytes, cfg: AppConfig) -> Image:
    """Everything a photo must pass before it is written to disk."""
    if len(data) > cfg.media.max_bytes:
        raise Refused(f"too large: {len(data)} bytes (limit {cfg.media.max_bytes})")
    img = sniff(data)
    if img.width <= 0 or img.height <= 0:
        raise Refused("corrupt image (zero size)")
    if img.width * img.height > cfg.media.max_pixels:
        raise Refused(f"decompression bomb refused: {img.width}x{img.height} pixels "
                      f"(limit {cfg.media.max_pixels})")
    return img


def store(data: bytes, img: Image) -> dict[str, Any]:
    """Write the photo under its content hash (the same photo twice is kept once)."""
    digest = hashlib.sha256(data).hexdigest()
    folder = data_dir() / "media"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{digest}.{img.ext}"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return {"path": f"media/{path.name}", "sha256": digest, "bytes": len(data), "mime": img.mime,
            "width": img.width, "height": img.height}


def media_file(evidence: dict[str, Any]) -> Path:
    """Where a stored photo is on disk (the console serves it from here)."""
    return data_dir() / evidence["path"]


# ------------------------------------------------------------------ downloads


def download_url(url: str, max_bytes: int) -> bytes:
    """GET a URL, reading at most max_bytes (a lying Content-Length cannot get past the cap)."""
    try:
        with httpx.stream("GET", url, timeout=20, follow_redirects=True) as resp:
            if resp.status_code in (403, 404, 410):
                raise Refused(f"no longer available (HTTP {resp.status_code})")
            if resp.status_code != 200:
                raise Transient(f"HTTP {resp.status_code} from {url.split('?')[0]}")
            declared = resp.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise Refused(f"too large: {declared} bytes (limit {max_bytes})")
            buf = bytearray()
            for chunk in resp.iter_bytes():
                buf += chunk
                if len(buf) > max_bytes:
                    raise Refused(f"too large: more than {max_bytes} bytes (limit {max_bytes})")
            return bytes(buf)
    except httpx.HTTPError as exc:
        raise Transient(f"download failed: {exc}") from None


def download_telegram(cfg: AppConfig, file_id: str) -> bytes:
    """getFile, then the file download, through python-telegram-bot (the configured api_base)."""
    from telegram.error import BadRequest, NetworkError, TelegramError

    from core.channels import get_connector

    async def run() -> bytes:
        async with get_connector(cfg, "telegram").bot() as bot:  # type: ignore[attr-defined]
            tg_file = await bot.get_file(file_id)
            if tg_file.file_size and tg_file.file_size > cfg.media.max_bytes:
                raise Refused(f"too large: {tg_file.file_size} bytes (limit {cfg.media.max_bytes})")
            return bytes(await tg_file.download_as_bytearray())

    try:
        return asyncio.run(run())
    except BadRequest as exc:
        raise Refused(f"Telegram: {exc.message}") from None
    except (NetworkError, TelegramError) as exc:
        raise Transient(f"Telegram: {exc}") from None


def download(cfg: AppConfig, channel: str, ref: str) -> bytes:
    if ref.startswith(("http://", "https://")):
        return download_url(ref, cfg.media.max_bytes)
    if channel == "telegram":
        return download_telegram(cfg, ref)
    raise Refused(f"no way to fetch a {channel} file reference")


# ------------------------------------------------------------------ the job


def enqueue_fetch(message_id: int) -> bool:
    """Queue the evidence fetch for a processed message, if it has photos. Returns whether it was queued."""
    return bool(enqueue_fetch_many([message_id]))


def enqueue_fetch_many(message_ids: list[int]) -> list[int]:
    """Queue the evidence fetch of every message among `message_ids` that has photos (one query,
    one Redis round trip). Returns the ids queued."""
    from rq import Queue, Retry
    from sqlmodel import select

    from core.db import one_of, session_scope
    from core.models import Message
    from core.queue import MAINTENANCE, get_queue

    if not message_ids:
        return []
    with session_scope() as s:
        rows = s.exec(select(Message.id, Message.attachments).where(one_of(s, Message.id, message_ids))).all()
    ids = [mid for mid, atts in rows if any(_wanted(a) for a in atts or [])]
    if ids:
        get_queue(MAINTENANCE).enqueue_many([Queue.prepare_data(
            FETCH_JOB, (mid,), job_id=f"media-{mid}", retry=Retry(max=3, interval=[10, 60, 300]),
            result_ttl=600, failure_ttl=30 * 86400) for mid in ids])
    return ids


def _wanted(att: dict[str, Any]) -> bool:
    return att.get("kind") == "photo" and "evidence" not in att


def fetch_job(message_id: int) -> list[dict[str, Any]]:
    """RQ job: fetch every photo of the message not fetched yet; returns the evidence entries."""
    return fetch_message_media(message_id, get_config())


def fetch_message_media(message_id: int, cfg: AppConfig) -> list[dict[str, Any]]:
    """Fetch, check and store each photo; record the outcome per attachment. A transient failure
    raises after recording what succeeded, so the retry only fetches what is still missing."""
    from core.db import session_scope
    from core.models import Event, Message, utcnow

    with session_scope() as s:
        msg = s.get(Message, message_id)
        if msg is None:
            return []
        channel, attachments = msg.channel, [dict(a) for a in (msg.attachments or [])]
    results: list[dict[str, Any]] = []
    transient: Transient | None = None
    for att in attachments:
        if not _wanted(att):
            continue
        try:
            data = download(cfg, channel, att["ref"])
            evidence = store(data, check(data, cfg))
        except Refused as exc:
            evidence = {"refused": str(exc)}
        except Transient as exc:
            transient = exc
            continue
        evidence["fetched_at"] = utcnow().isoformat()
        att["evidence"] = evidence
        results.append(evidence)
    if results:
        with session_scope() as s:
            msg = s.get(Message, message_id)
            assert msg is not None
            merged = [dict(a) for a in (msg.attachments or [])]
            for i, att in enumerate(attachments):
                if "evidence" in att and i < len(merged) and merged[i].get("ref") == att.get("ref"):
                    merged[i]["evidence"] = att["evidence"]
            msg.attachments = merged  # a new list: the JSON column sees the change
            for ev in results:
                s.add(Event(at=utcnow(), actor="worker", action="media.refused" if "refused" in ev else "media.stored",
                            ticket_id=msg.ticket_id, message_id=message_id, data=ev))
    if transient is not None:
        raise transient
    return results
