"""A fake Twilio REST API (Messages resource) and a fake Twilio that calls the hub's webhooks.

REST (https://www.twilio.com/docs/messaging/api/message-resource):
- POST /2010-04-01/Accounts/{AccountSid}/Messages.json  (form: To, From | MessagingServiceSid,
  Body | MediaUrl | ContentSid, ContentVariables, StatusCallback) -> 201 + the Message JSON;
- GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json and GET /2010-04-01/Accounts/{Sid}.json.
HTTP Basic auth with the Account SID and Auth Token. Errors use Twilio's body
{"code", "message", "more_info", "status"}: 20003 (auth), 20404, 21604/21603/21619/21617
(missing or too long parameters), 21610 (recipient replied STOP), 20429 (429), 20500 (500).
WhatsApp free-form messages outside the 24-hour window are accepted and then fail with 63016,
reported through the status callback, as Twilio does.

Webhooks: `send_inbound()` POSTs an incoming message form exactly as Twilio does, signed with
X-Twilio-Signature (HMAC-SHA1 over the public URL + sorted parameters, base64, computed here
from the documentation, not with the twilio library). `proxy` maps the public URL Twilio is
configured with to where the hub really listens, as a reverse proxy would.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import secrets
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

API = "/2010-04-01"
WINDOW_SECONDS = 24 * 3600


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's documented algorithm: URL, then each POST parameter name+value sorted by name,
    HMAC-SHA1 keyed with the Auth Token, base64."""
    data = url + "".join(f"{k}{params[k]}" for k in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode("utf-8"), hashlib.sha1).digest()).decode()


def gsm_segments(body: str) -> int:
    """Twilio's num_segments, counted the simple way (used to cross-check the hub's planner)."""
    basic = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
             "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
    ext = "\f^{}\\[~]|€"
    if all(c in basic or c in ext for c in body):
        units, single, per = sum(2 if c in ext else 1 for c in body), 160, 153
    else:
        units, single, per = len(body.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else -(-units // per)


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


@dataclass
class TwilioState:
    account_sid: str
    auth_token: str
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)  # outbound Message resources, in order
    requests: list[dict[str, list[str]]] = field(default_factory=list)  # raw create parameters
    failures: list[tuple[int, int, str] | None] = field(default_factory=list)  # (status, code, message); None: succeed
    opted_out: set[str] = field(default_factory=set)
    last_inbound: dict[str, float] = field(default_factory=dict)  # whatsapp:+62… -> unix time
    callbacks: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # pending status callbacks
    proxy: dict[str, str] = field(default_factory=dict)  # public URL prefix -> real URL prefix
    lock: threading.Lock = field(default_factory=threading.Lock)
    _n: itertools.count = field(default_factory=lambda: itertools.count(1))

    # ---------------------------------------------------------------- failure injection

    def fail_next(self, status: int = 500, code: int | None = None, message: str | None = None,
                  times: int = 1, after: int = 0) -> None:
        """The next `times` create requests fail (after `after` that succeed)."""
        code = code or {429: 20429, 500: 20500, 503: 20503}.get(status, status)
        message = message or {429: "Too Many Requests", 500: "Internal Server Error"}.get(status, "Error")
        self.failures.extend([None] * after + [(status, code, message)] * times)

    def messages_to(self, number: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["to"] == number]

    # ---------------------------------------------------------------- Twilio -> hub

    def _route(self, url: str) -> str:
        for public, real in self.proxy.items():
            if url.startswith(public):
                return real + url[len(public):]
        return url

    def post_signed(self, url: str, params: dict[str, str], signature: str | None = "auto",
                    timeout: float = 15) -> httpx.Response:
        """POST a form to `url` (a public URL, routed through `proxy`) with Twilio's signature."""
        headers = {"User-Agent": "TwilioProxy/1.1", "I-Twilio-Idempotency-Token": secrets.token_hex(8)}
        if signature == "auto":
            signature = twilio_signature(self.auth_token, url, params)
        if signature is not None:
            headers["X-Twilio-Signature"] = signature
        return httpx.post(self._route(url), data=params, headers=headers, timeout=timeout)

    def inbound_params(self, from_: str, body: str = "", to: str = "+62315550100",
                       media: list[tuple[str, str]] | None = None, sid: str | None = None,
                       profile_name: str | None = None, **extra: str) -> dict[str, str]:
        """The parameters Twilio posts for an incoming SMS, or WhatsApp when from_ is whatsapp:+…."""
        sid = sid or _sid("MM" if media else "SM")
        wa = from_.startswith("whatsapp:")
        if wa and not to.startswith("whatsapp:"):
            to = "whatsapp:" + to
        params = {"ToCountry": "ID", "ToState": "", "SmsMessageSid": sid, "NumMedia": str(len(media or [])),
                  "ToCity": "", "FromZip": "", "SmsSid": sid, "FromState": "", "SmsStatus": "received",
                  "FromCity": "", "Body": body, "FromCountry": "ID", "To": to, "ToZip": "",
                  "NumSegments": str(gsm_segments(body)), "MessageSid": sid, "AccountSid": self.account_sid,
                  "From": from_, "ApiVersion": "2010-04-01"}
        if wa:
            params.update({"ProfileName": profile_name or "Warga", "WaId": from_.split("+")[-1],
                           "MessageType": "image" if media else "text", "ReferralNumMedia": "0"})
            for k in ("ToCountry", "ToState", "ToCity", "FromZip", "FromState", "FromCity", "FromCountry", "ToZip"):
                params.pop(k)
        for i, (url, mime) in enumerate(media or []):
            params[f"MediaUrl{i}"], params[f"MediaContentType{i}"] = url, mime
        params.update(extra)
        return params

    def send_inbound(self, url: str, from_: str, body: str = "", signature: str | None = "auto",
                     **kwargs: Any) -> tuple[httpx.Response, dict[str, str]]:
        """A citizen's message reaches Twilio; Twilio calls the hub's webhook at `url`."""
        params = self.inbound_params(from_, body, **kwargs)
        if from_.startswith("whatsapp:"):
            self.last_inbound[from_] = time.time()
        if body.strip().upper() in ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"):
            self.opted_out.add(from_)  # Twilio's default opt-out handling
            params["OptOutType"] = "STOP"
        return self.post_signed(url, params, signature), params

    def set_status(self, sid: str, status: str, error_code: int | None = None) -> None:
        """Move a message to `status` and queue its status callback, as the carrier would."""
        with self.lock:
            msg = self.messages[sid]
            msg["status"], msg["error_code"] = status, error_code
            msg["error_message"] = None if error_code is None else f"Error {error_code}"
            msg["date_updated"] = formatdate(usegmt=True)
            if msg.get("_callback"):
                params = {"AccountSid": self.account_sid, "ApiVersion": "2010-04-01", "From": msg["from"] or "",
                          "To": msg["to"], "MessageSid": sid, "SmsSid": sid, "MessageStatus": status,
                          "SmsStatus": status}
                if msg.get("messaging_service_sid"):
                    params["MessagingServiceSid"] = msg["messaging_service_sid"]
                if error_code is not None:
                    params["ErrorCode"] = str(error_code)
                self.callbacks.append((msg["_callback"], params))

    def flush_callbacks(self) -> list[httpx.Response]:
        """Deliver the queued status callbacks to the hub (signed)."""
        with self.lock:
            pending, self.callbacks = self.callbacks, []
        return [self.post_signed(url, params) for url, params in pending]


def _err(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}
    return JSONResponse(body, status_code=status, headers=headers)


def _public(msg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in msg.items() if not k.startswith("_")}


def create_app(state: TwilioState) -> FastAPI:
    app = FastAPI()

    def authorised(request: Request, account: str) -> JSONResponse | None:
        auth = request.headers.get("authorization", "")
        try:
            user, _, password = base64.b64decode(auth.removeprefix("Basic ")).decode().partition(":")
        except ValueError:
            user = password = ""
        if not auth.startswith("Basic ") or user != state.account_sid or password != state.auth_token:
            return _err(401, 20003, "Authenticate")
        if account != state.account_sid:
            return _err(404, 20404, f"The requested resource {request.url.path} was not found")
        return None

    @app.get(API + "/Accounts/{account}.json")
    async def account(request: Request, account: str) -> JSONResponse:
        if (denied := authorised(request, account)) is not None:
            return denied
        return JSONResponse({"sid": account, "friendly_name": "Aduan Kota (fake)", "status": "active",
                             "type": "Full"})

    @app.post(API + "/Accounts/{account}/Messages.json")
    async def create(request: Request, account: str) -> JSONResponse:
        if (denied := authorised(request, account)) is not None:
            return denied
        form = parse_qs((await request.body()).decode(), keep_blank_values=True)
        state.requests.append(form)
        p = {k: v[0] for k, v in form.items()}
        with state.lock:
            failure = state.failures.pop(0) if state.failures else None
        if failure is not None:
            status, code, message = failure
            return _err(status, code, message, {"Retry-After": "1"} if status == 429 else None)
        to, body, content = p.get("To", ""), p.get("Body", ""), p.get("ContentSid")
        if not to:
            return _err(400, 21604, "A 'To' phone number is required.")
        if not p.get("From") and not p.get("MessagingServiceSid"):
            return _err(400, 21603, "A 'From' phone number is required.")
        if not body and "MediaUrl" not in form and not content:
            return _err(400, 21619, "A text message body, media URL or Content SID is required.")
        if len(body) > 1600:
            return _err(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        if to in state.opted_out:
            return _err(400, 21610, "Attempt to send to unsubscribed recipient")
        sid = _sid("MM" if "MediaUrl" in form else "SM")
        now = formatdate(usegmt=True)
        wa = to.startswith("whatsapp:")
        msg = {"account_sid": account, "api_version": "2010-04-01", "body": body, "date_created": now,
               "date_sent": None, "date_updated": now, "direction": "outbound-api", "error_code": None,
               "error_message": None, "from": p.get("From"), "messaging_service_sid": p.get("MessagingServiceSid"),
               "num_media": str(len(form.get("MediaUrl", []))),
               "num_segments": "1" if wa or content else str(gsm_segments(body)),
               "price": None, "price_unit": "USD", "sid": sid,
               "status": "accepted" if p.get("MessagingServiceSid") and not p.get("From") else "queued",
               "subresource_uris": {"media": f"{API}/Accounts/{account}/Messages/{sid}/Media.json"},
               "to": to, "uri": f"{API}/Accounts/{account}/Messages/{sid}.json",
               "_callback": p.get("StatusCallback"), "_content_sid": content,
               "_content_variables": p.get("ContentVariables")}
        with state.lock:
            state.messages[sid] = msg
            state.sent.append(msg)
        answer = _public(msg)
        if wa and not content and time.time() - state.last_inbound.get(to, 0) > WINDOW_SECONDS:
            state.set_status(sid, "failed", 63016)  # accepted, then refused by WhatsApp
        return JSONResponse(answer, status_code=201)

    @app.get(API + "/Accounts/{account}/Messages/{sid}.json")
    async def fetch(request: Request, account: str, sid: str) -> JSONResponse:
        if (denied := authorised(request, account)) is not None:
            return denied
        msg = state.messages.get(sid)
        if msg is None:
            return _err(404, 20404, f"The requested resource {request.url.path} was not found")
        return JSONResponse(_public(msg))

    return app
