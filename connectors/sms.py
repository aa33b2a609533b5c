"""SMS through Twilio: signed webhooks in, `Client.messages.create` out.

Twilio POSTs form-encoded messages to `/webhooks/sms` and delivery reports to
`/webhooks/sms/status`. Both are signed (`X-Twilio-Signature`) over the URL Twilio called,
which behind a reverse proxy is not the URL this process sees, so the signature is checked
against `hub.public_url` (or this channel's `public_url`) plus the request path. WhatsApp
messages (`whatsapp:+62…`) arrive on the same webhook and become channel "whatsapp".

SMS is paid per segment: replies are planned the way handsets reassemble them (GSM-7, where
the extension characters cost two septets, or UCS-2; 160/70 units alone, 153/67 per part when
concatenated), never cut silently, and the number of segments is reported.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Any, ClassVar
from urllib.parse import parse_qs

import phonenumbers
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import SecretStr, field_validator, model_validator

from connectors.base import strict_parse
from connectors.base import (ChannelSettings, Connector, Outgoing, ParseError, PermanentError, RetryableError,
                             SendResult)
from connectors.twilio_common import (MAX_BODY, WA_PREFIX, describe_error, map_status, normalise_phone,
                                      opt_keyword, plan_sms, rewriting_client, segment_count)
from core.message import Attachment, GeoPoint, InboundMessage

log = logging.getLogger(__name__)

TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
TWILIO_ORIGIN = "https://api.twilio.com"

# ------------------------------------------------------------------ settings


class TwilioSettings(ChannelSettings):
    account_sid: str | None = None
    auth_token: SecretStr | None = None
    from_number: str | None = None  # E.164, e.g. +62315550100 (or a Messaging Service instead)
    messaging_service_sid: str | None = None
    api_base: str = TWILIO_ORIGIN
    public_url: str | None = None  # the address Twilio calls, when it differs from hub.public_url
    default_region: str = "ID"  # how 0812… numbers are read
    max_segments: int = 10  # per Twilio message; longer replies go as numbered parts
    per_sender_per_second: int = 10  # the sending number's (or Messaging Service's) throughput at Twilio
    status_callback: bool = True
    max_text: int = MAX_BODY

    @field_validator("default_region")
    @classmethod
    def _region(cls, v: str) -> str:
        if v.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown region {v!r}; use a two-letter country code such as ID")
        return v.upper()

    @field_validator("max_segments")
    @classmethod
    def _segments(cls, v: int) -> int:
        if not 1 <= v <= 24:
            raise ValueError("must be between 1 and 24 (Twilio bodies are at most 1600 characters)")
        return v

    @model_validator(mode="after")
    def _needs(self) -> "TwilioSettings":
        if self.enabled:
            if not self.account_sid or self.auth_token is None:
                raise ValueError("account_sid and auth_token are required when the channel is enabled")
            if not self.from_number and not self.messaging_service_sid:
                raise ValueError("from_number or messaging_service_sid is required when the channel is enabled")
        return self


# ------------------------------------------------------------------ inbound payloads


def _kind(mime: str | None) -> str:
    major = (mime or "").split("/")[0]
    return {"image": "photo", "video": "video", "audio": "audio"}.get(major, "document")


def parse_twilio(raw: Any, region: str = "ID") -> InboundMessage | None:
    """Twilio's incoming-message webhook parameters -> InboundMessage (channel sms or whatsapp)."""
    if not isinstance(raw, dict):
        raise ParseError("not a Twilio webhook: form parameters expected")
    sid = raw.get("MessageSid") or raw.get("SmsMessageSid") or raw.get("SmsSid")
    sender = raw.get("From")
    if not isinstance(sid, str) or not sid.strip() or not isinstance(sender, str) or not sender.strip():
        raise ParseError("not a Twilio message: MessageSid and From are required")
    if raw.get("MessageStatus") and "Body" not in raw and "NumMedia" not in raw:
        return None  # a delivery report posted to the message webhook: nothing for the hub
    channel = "whatsapp" if sender.lower().startswith(WA_PREFIX) else "sms"
    try:
        address = normalise_phone(sender, region)
    except ValueError as exc:
        raise ParseError(str(exc)) from None
    try:
        count = int(raw.get("NumMedia") or 0)
    except ValueError:
        raise ParseError("NumMedia must be a number") from None
    attachments = []
    for i in range(max(0, min(count, 10))):
        url = raw.get(f"MediaUrl{i}")
        if url:
            mime = raw.get(f"MediaContentType{i}")
            attachments.append(Attachment(kind=_kind(mime), ref=url, mime_type=mime))
    location = None
    if raw.get("Latitude") and raw.get("Longitude"):
        try:
            location = GeoPoint(lat=float(raw["Latitude"]), lon=float(raw["Longitude"]),
                                label=raw.get("Label") or raw.get("Address") or None)
        except ValueError as exc:
            raise ParseError(f"bad location: {exc}") from None
    return InboundMessage(
        channel=channel, external_id=sid.strip(), sender=address,
        sender_display=raw.get("ProfileName") or None, text=raw.get("Body") or "",
        received_at=datetime.now(timezone.utc), attachments=attachments, location=location,
        in_reply_to=raw.get("OriginalRepliedMessageSid") or None, public=False,
        raw={k: v for k, v in raw.items() if isinstance(v, str)},
    )


# ------------------------------------------------------------------ provider client


class SmsConnector(Connector):
    name: ClassVar[str] = "sms"
    Settings = TwilioSettings
    settings: TwilioSettings

    @classmethod
    @strict_parse
    def parse(cls, raw: dict[str, Any]) -> InboundMessage | None:
        return parse_twilio(raw)

    # -------------------------------------------------------------- outbound

    def address(self, to: str) -> str:
        return normalise_phone(to, self.settings.default_region)

    def plan(self, text: str) -> tuple[list[str], int]:
        """(bodies to create, segments the citizen's phone receives)."""
        bodies = plan_sms(text, self.settings.max_segments)
        return bodies, sum(segment_count(b) for b in bodies)

    def client(self):  # type: ignore[no-untyped-def]
        from twilio.rest import Client

        token = self.settings.auth_token.get_secret_value() if self.settings.auth_token else ""
        return Client(self.settings.account_sid, token, http_client=rewriting_client(self.settings.api_base))

    def callback_url(self) -> str | None:
        if not self.settings.status_callback:
            return None
        try:
            return f"{public_base(self.settings)}/webhooks/sms/status"
        except Exception as exc:  # noqa: BLE001 - no configuration to read: send without delivery reports
            log.warning("no status callback URL (%s); delivery reports will not be recorded", exc)
            return None

    def limits(self, out: Outgoing) -> list[tuple[str, int, float]]:
        """The account's API concurrency, and the per-number rate of the sending number or service."""
        sender = self.settings.messaging_service_sid or self.settings.from_number or "default"
        return [(f"twilio:{self.settings.account_sid}", 50, 1.0),
                (f"twilio:{self.name}:{sender}", self.settings.per_sender_per_second, 1.0)]

    def create_params(self, to: str) -> dict[str, Any]:
        params: dict[str, Any] = {"to": to}
        if self.settings.messaging_service_sid:
            params["messaging_service_sid"] = self.settings.messaging_service_sid
        if self.settings.from_number:
            params["from_"] = self.sender_address()
        if cb := self.callback_url():
            params["status_callback"] = cb
        return params

    def sender_address(self) -> str:
        return self.settings.from_number or ""

    def send(self, out: Outgoing) -> SendResult:
        try:
            to = self.address(out.to)
        except ValueError as exc:
            raise PermanentError(f"cannot send an SMS to {out.to!r}: {exc}", code="bad_address") from None
        bodies, segments = self.plan(out.text)
        return self.create_all(out, [{**self.create_params(to), "body": b} for b in bodies], parts=segments)

    def create_all(self, out: Outgoing, requests: list[dict[str, Any]], parts: int) -> SendResult:
        """Create each message once, even across retries: parts already accepted are remembered in
        Redis under the reply's idempotency key, so a 500 on part 2 never re-sends part 1."""
        client = self.client()
        memo = _PartMemo(out.idempotency_key) if len(requests) > 1 and out.idempotency_key else None
        sids, status = [], "queued"
        for i, params in enumerate(requests):
            done = memo.get(i) if memo else None
            if done:
                sids.append(done)
                continue
            msg = self._create(client, params)
            sids.append(msg.sid)
            status = msg.status or status
            if memo:
                memo.put(i, msg.sid)
        return SendResult(provider_id=",".join(sids), parts=parts, state=map_status(status) or "queued")

    def _create(self, client: Any, params: dict[str, Any]) -> Any:
        import requests
        from twilio.base.exceptions import TwilioException, TwilioRestException

        try:
            return client.messages.create(**params)
        except TwilioRestException as exc:
            raise self.translate(exc.status, exc.code, exc.msg, client) from None
        except TwilioException as exc:  # RFC 9457 service errors and the like
            status = int(getattr(exc, "status", 0) or 0)
            raise self.translate(status, getattr(exc, "code", None), str(exc), client) from None
        except requests.RequestException as exc:
            raise RetryableError(f"Twilio unreachable: {exc.__class__.__name__}") from None

    def translate(self, status: int, code: Any, message: str, client: Any) -> Exception:
        code_s = str(code) if code is not None else str(status)
        if status == 429 or status >= 500:
            retry_after = None
            last = getattr(client.http_client, "last_response", None)
            if status == 429 and last is not None:
                try:
                    retry_after = float((last.headers or {}).get("Retry-After"))
                except (TypeError, ValueError):
                    retry_after = None
            return RetryableError(f"Twilio {status} ({code_s}): {message}", retry_after=retry_after)
        text = describe_error(code_s, message).removeprefix(code_s).strip()  # deliver() prefixes the code
        return PermanentError(f"Twilio: {text}", code=code_s, opt_out=code_s == "21610")

    def check(self) -> str:
        from twilio.base.exceptions import TwilioException

        try:
            account = self.client().api.v2010.accounts(self.settings.account_sid).fetch()
        except TwilioException as exc:
            raise RuntimeError(f"Twilio refused: {exc}") from None
        return f"{account.friendly_name} ({account.status})"

    # -------------------------------------------------------------- inbound

    def router(self) -> Any:
        return twilio_router(self, "/webhooks/sms")


class _PartMemo:
    def __init__(self, key: str):
        from core.redisconn import get_redis

        self.redis, self.key = get_redis(), f"aduan:twilio:parts:{key}"

    def get(self, i: int) -> str | None:
        v = self.redis.hget(self.key, str(i))
        return v.decode() if isinstance(v, bytes) else v

    def put(self, i: int, sid: str) -> None:
        self.redis.hset(self.key, str(i), sid)
        self.redis.expire(self.key, 7 * 86400)


def public_base(settings: TwilioSettings, cfg: Any = None) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/")
    if cfg is None:
        from core.config import get_config

        cfg = get_config()
    return cfg.hub.public_url.rstrip("/")


class _Params(dict):
    """parse_qs result with the `getlist` the twilio RequestValidator understands."""

    def getlist(self, key: str) -> list[str]:
        return self[key]


def _tokens(request: Request, fallback: TwilioSettings) -> list[tuple[str, TwilioSettings]]:
    """Auth tokens of every enabled Twilio channel (SMS and WhatsApp share one webhook)."""
    cfg = getattr(request.app.state, "cfg", None)
    found: list[tuple[str, TwilioSettings]] = []
    for name in ("sms", "whatsapp"):
        try:
            s = cfg.channel(name) if cfg is not None else None
        except KeyError:
            s = None
        if isinstance(s, TwilioSettings) and s.enabled and s.auth_token is not None:
            found.append((s.auth_token.get_secret_value(), s))
    if not found and fallback.auth_token is not None:
        found.append((fallback.auth_token.get_secret_value(), fallback))
    return found


async def verified_params(request: Request, fallback: TwilioSettings) -> tuple[dict[str, str] | None, TwilioSettings]:
    """The form parameters if X-Twilio-Signature matches the public URL Twilio called, else None."""
    from twilio.request_validator import RequestValidator

    signature = request.headers.get("x-twilio-signature", "")
    try:
        multi = _Params(parse_qs((await request.body()).decode("utf-8"), keep_blank_values=True, strict_parsing=False))
    except (UnicodeDecodeError, ValueError):
        return None, fallback
    cfg = getattr(request.app.state, "cfg", None)
    for token, settings in _tokens(request, fallback):
        url = public_base(settings, cfg) + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if signature and RequestValidator(token).validate(url, multi, signature):
            return {k: v[0] for k, v in multi.items()}, settings
    return None, fallback


def twilio_router(connector: SmsConnector, path: str) -> APIRouter:
    """POST `path` (incoming messages) and `path`/status (delivery reports), Twilio-signed."""
    from core.channel_switch import refuse_if_off
    from core.intake import accept_or_503

    api = APIRouter()
    forbidden = JSONResponse({"ok": False, "error": "invalid or missing X-Twilio-Signature"}, status_code=403)

    @api.post(path, include_in_schema=False)
    async def incoming(request: Request) -> Response:
        params, settings = await verified_params(request, connector.settings)
        if params is None:
            return forbidden
        try:
            msg = parse_twilio(params, settings.default_region)
        except (ParseError, ValueError) as exc:
            return JSONResponse({"ok": False, "error": f"malformed Twilio request: {exc}"}, status_code=400)
        if msg is not None and (off := await refuse_if_off(request, msg.channel)) is not None:
            return off  # SMS and WhatsApp share this path: the message's own channel decides
        keyword = opt_keyword(params) if msg is not None and msg.channel == "sms" else None
        if msg is not None and keyword is not None:
            from sqlalchemy.exc import InterfaceError, OperationalError

            try:
                await asyncio.to_thread(store_opt_keyword, msg, keyword == "stop")
            except (OperationalError, InterfaceError):
                return JSONResponse({"ok": False, "error": "temporarily unavailable, retry later"}, status_code=503)
        elif msg is not None:
            stored = await accept_or_503(msg)
            if stored.status_code != 200:
                return stored
        return Response(TWIML_EMPTY, media_type="text/xml")  # only now does Twilio consider it delivered

    @api.post(f"{path}/status", include_in_schema=False)
    async def status(request: Request) -> Response:
        params, _ = await verified_params(request, connector.settings)
        if params is None:
            return forbidden
        sid, state = params.get("MessageSid") or params.get("SmsSid"), map_status(params.get("MessageStatus"))
        if not sid or state is None:
            return Response(status_code=204)  # receiving/received and unknown states: nothing to record
        channel = "whatsapp" if (params.get("To") or "").lower().startswith(WA_PREFIX) else "sms"
        code = params.get("ErrorCode") or None
        return await _record(channel, sid, state, code)

    return api


async def _record(channel: str, sid: str, state: str, code: str | None) -> Response:
    from sqlalchemy.exc import InterfaceError, OperationalError

    from core.replies import record_delivery_status

    error = describe_error(code) if code and code != "0" else None
    try:
        await asyncio.to_thread(record_delivery_status, channel, sid, state, code, error, code == "21610")
    except (OperationalError, InterfaceError):
        return JSONResponse({"ok": False, "error": "temporarily unavailable, retry later"}, status_code=503)
    return Response(status_code=204)


def store_opt_keyword(msg: InboundMessage, opted_out: bool) -> None:
    """Keep the keyword message for the record (already processed, no ticket) and flip the contact."""
    from core.db import session_scope
    from core.intake import store
    from core.models import Contact, Event, utcnow

    with session_scope() as s:
        row, created = store(s, msg)
        if not created:
            return
        row.state, row.kind, row.processed_at = "processed", "opt_out" if opted_out else "opt_in", utcnow()
        contact = s.get(Contact, row.contact_id)
        if contact is not None:
            contact.opted_out = opted_out
            contact.opted_out_reason = (f"warga membalas {msg.text.strip()[:20]} via SMS / replied STOP"
                                        if opted_out else None)
        s.add(Event(at=utcnow(), actor="citizen", action="contact.opt_out" if opted_out else "contact.opt_in",
                    message_id=row.id, data={"keyword": msg.text.strip()[:20], "channel": msg.channel}))
