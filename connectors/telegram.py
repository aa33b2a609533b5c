"""Telegram through python-telegram-bot: webhook or long polling in, sendMessage out.

The webhook checks the `X-Telegram-Bot-Api-Secret-Token` header that Telegram echoes from
setWebhook; polling keeps its offset in the database so a restart neither skips nor repeats.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from datetime import datetime, timezone
from typing import Any, ClassVar, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr, model_validator

from connectors.base import (ChannelSettings, Connector, Outgoing, ParseError, PermanentError, RetryableError,
                             SendResult, strict_parse)
from core.message import Attachment, GeoPoint, InboundMessage

log = logging.getLogger(__name__)


class TelegramSettings(ChannelSettings):
    token: SecretStr | None = None
    mode: Literal["webhook", "polling"] = "webhook"
    secret_token: SecretStr | None = None
    api_base: str = "https://api.telegram.org"
    poll_timeout: int = 25
    max_text: int = 4096
    bot_rate_per_second: int = 30  # Telegram's broadcast limit for one bot

    @model_validator(mode="after")
    def _needs(self) -> "TelegramSettings":
        if self.enabled and self.token is None:
            raise ValueError("token is required when the channel is enabled")
        if self.enabled and self.mode == "webhook" and self.secret_token is None:
            raise ValueError("secret_token is required in webhook mode (Telegram echoes it on every call)")
        return self


def _name(user: dict[str, Any]) -> str | None:
    full = " ".join(p for p in (user.get("first_name"), user.get("last_name")) if p)
    return full or (f"@{user['username']}" if user.get("username") else None)


def _attachments(m: dict[str, Any]) -> list[Attachment]:
    out: list[Attachment] = []
    if m.get("photo"):
        best = max(m["photo"], key=lambda p: (p.get("width", 0) * p.get("height", 0), p.get("file_size", 0)))
        out.append(Attachment(kind="photo", ref=best["file_id"], mime_type="image/jpeg", size=best.get("file_size")))
    for key, kind in (("document", "document"), ("video", "video"), ("voice", "audio"), ("audio", "audio"),
                      ("sticker", "sticker")):
        if isinstance(m.get(key), dict) and m[key].get("file_id"):
            d = m[key]
            out.append(Attachment(kind=kind, ref=d["file_id"], mime_type=d.get("mime_type"),
                                  size=d.get("file_size"), name=d.get("file_name")))
    return out


class TelegramConnector(Connector):
    name: ClassVar[str] = "telegram"
    Settings = TelegramSettings
    settings: TelegramSettings

    @property
    def polls(self) -> bool:  # type: ignore[override]
        return self.settings.mode == "polling"

    @classmethod
    @strict_parse
    def parse(cls, raw: dict[str, Any]) -> InboundMessage | None:
        """An Update (Bot API JSON) -> InboundMessage; None for updates that carry no citizen message."""
        if not isinstance(raw, dict) or not isinstance(raw.get("update_id"), int):
            raise ParseError("not a Telegram Update: integer update_id is required")
        m = raw.get("message") or raw.get("edited_message")
        if m is None:
            return None  # callback queries, member updates, channel posts: nothing to store
        try:
            chat, date, mid = m["chat"], m["date"], m["message_id"]
            chat_id = int(chat["id"])
            received = datetime.fromtimestamp(int(date), tz=timezone.utc)
        except (KeyError, TypeError, ValueError, OverflowError, OSError) as exc:
            raise ParseError(f"message is missing chat, date or message_id ({exc})") from None
        if chat.get("type", "private") != "private":
            return None  # the bot answers citizens in private chats only
        text = m.get("text") or m.get("caption") or ""
        loc = m.get("location") or (m.get("venue") or {}).get("location")
        location = None
        if isinstance(loc, dict):
            label = (m.get("venue") or {}).get("title")
            location = GeoPoint(lat=loc["latitude"], lon=loc["longitude"], label=label)
        reply = m.get("reply_to_message")
        edited = "edited_message" in raw
        return InboundMessage(
            channel="telegram",
            external_id=f"{chat_id}:{mid}" + (f":e{m.get('edit_date', '')}" if edited else ""),
            sender=str(chat_id), sender_display=_name(m.get("from") or chat),
            text=text, received_at=received, attachments=_attachments(m), location=location,
            in_reply_to=f"{chat_id}:{reply['message_id']}" if isinstance(reply, dict) and "message_id" in reply else None,
            public=False, raw=raw,
        )

    # ------------------------------------------------------------ provider client

    def bot(self):  # type: ignore[no-untyped-def]
        from telegram import Bot
        from telegram.request import HTTPXRequest

        base = self.settings.api_base.rstrip("/")
        token = self.settings.token.get_secret_value() if self.settings.token else ""
        return Bot(token, base_url=f"{base}/bot", base_file_url=f"{base}/file/bot",
                   request=HTTPXRequest(connect_timeout=5, read_timeout=10),
                   get_updates_request=HTTPXRequest(read_timeout=self.settings.poll_timeout + 10))

    def limits(self, out: Outgoing) -> list[tuple[str, int, float]]:
        """Bot API limits: about 30 messages per second per bot, one per second per chat."""
        return [("telegram:bot", self.settings.bot_rate_per_second, 1.0), (f"telegram:chat:{out.to}", 1, 1.0)]

    def send(self, out: Outgoing) -> SendResult:
        """Synchronous for the worker; one event loop and one HTTP connection pool per process."""
        return self._loop().run_until_complete(self._send(out))

    def _loop(self) -> asyncio.AbstractEventLoop:
        loop = getattr(self, "_event_loop", None)
        if loop is None or loop.is_closed():
            loop = self._event_loop = asyncio.new_event_loop()
            self._bot = None
        return loop

    async def _client(self):  # type: ignore[no-untyped-def]
        if getattr(self, "_bot", None) is None:
            self._bot = self.bot()
            await self._bot.initialize()
        return self._bot

    async def _send(self, out: Outgoing) -> SendResult:
        from telegram import ReplyParameters
        from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

        reply_id = None
        if out.reply_to and out.reply_to.split(":")[0] == out.to:
            reply_id = int(out.reply_to.split(":")[1])
        ids: list[str] = []
        try:
            bot = await self._client()  # one pooled client per process
            for i, part in enumerate(self.split(out.text)):
                params = ReplyParameters(reply_id, allow_sending_without_reply=True) if reply_id and i == 0 else None
                sent = await bot.send_message(chat_id=int(out.to), text=part, reply_parameters=params)
                ids.append(f"{sent.chat_id}:{sent.message_id}")
        except RetryAfter as exc:
            ra = exc.retry_after
            raise RetryableError(f"Telegram rate limit: {exc}", retry_after=ra.total_seconds() if hasattr(ra, "total_seconds") else float(ra)) from None
        except (Forbidden, BadRequest) as exc:
            raise PermanentError(f"Telegram refused: {exc.message}", code=type(exc).__name__) from None
        except NetworkError as exc:
            raise RetryableError(f"Telegram unreachable: {exc}") from None
        except TelegramError as exc:
            raise RetryableError(f"Telegram error: {exc}") from None
        return SendResult(provider_id=",".join(ids), parts=len(ids))

    def check(self) -> str:
        async def me() -> str:
            async with self.bot() as bot:
                user = await bot.get_me()
                return f"@{user.username}"
        return asyncio.run(me())

    async def set_webhook(self, url: str) -> None:
        async with self.bot() as bot:
            secret = self.settings.secret_token.get_secret_value() if self.settings.secret_token else None
            await bot.set_webhook(url=url, secret_token=secret, allowed_updates=["message", "edited_message"])

    # ------------------------------------------------------------ inbound

    def router(self) -> Any:
        from core.channel_switch import refuse_if_off
        from core.intake import accept_or_503

        api = APIRouter()

        @api.post("/webhooks/telegram", include_in_schema=False)
        async def webhook(request: Request) -> JSONResponse:
            expected = self.settings.secret_token.get_secret_value() if self.settings.secret_token else ""
            given = request.headers.get("x-telegram-bot-api-secret-token", "")
            if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
                return JSONResponse({"ok": False, "error": "invalid secret token"}, status_code=403)
            if (off := await refuse_if_off(request, self.name)) is not None:
                return off  # switched off by an admin: 503, Telegram keeps the update for later
            try:
                body = json.loads(await request.body())
                msg = self.parse(body)
            except (ValueError, UnicodeDecodeError) as exc:
                return JSONResponse({"ok": False, "error": f"malformed update: {exc}"}, status_code=400)
            if msg is None:
                return JSONResponse({"ok": True, "ignored": True})
            return await accept_or_503(msg)

        return api

    async def run(self, stop: asyncio.Event) -> None:
        """Long polling with getUpdates; the offset is stored only after the messages are."""
        from telegram.error import NetworkError, RetryAfter

        from core.cursors import load_cursor, save_cursor
        from core.intake import accept

        offset = int(load_cursor("telegram", "offset") or 0)
        async with self.bot() as bot:
            await bot.delete_webhook()
            while not stop.is_set():
                try:
                    updates = await bot.get_updates(offset=offset or None, timeout=self.settings.poll_timeout,
                                                    allowed_updates=["message", "edited_message"])
                except RetryAfter as exc:
                    await _sleep(stop, float(getattr(exc.retry_after, "total_seconds", lambda: exc.retry_after)()))
                    continue
                except NetworkError as exc:
                    log.warning("telegram polling: %s", exc)
                    await _sleep(stop, 5)
                    continue
                for update in updates:
                    try:
                        msg = self.parse(update.to_dict())
                    except ParseError as exc:
                        log.warning("telegram update %s skipped: %s", update.update_id, exc)
                        msg = None
                    if msg is not None:
                        await asyncio.to_thread(accept, msg)
                    offset = update.update_id + 1
                    await asyncio.to_thread(save_cursor, "telegram", "offset", str(offset))


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        pass
