"""Twilio helpers shared by the SMS and WhatsApp connectors: phone numbers, SMS segment
arithmetic, Twilio's status and error vocabulary, and the HTTP client that can be pointed
at another origin. Pure functions, no I/O (except the HTTP client itself).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import phonenumbers

MAX_BODY = 1600  # Twilio refuses longer bodies (error 21617)
WA_PREFIX = "whatsapp:"

# Delivery-report texts operators read on the ticket (Twilio error dictionary, shortened).
ERROR_TEXTS = {
    "21610": "penerima membalas STOP (berhenti berlangganan); tidak ada SMS lagi ke nomor ini "
             "/ recipient opted out (STOP)",
    "21211": "nomor tujuan tidak valid / invalid 'To' number",
    "21614": "nomor tujuan bukan ponsel / 'To' is not a mobile number",
    "30003": "ponsel tujuan tidak dapat dijangkau / unreachable handset",
    "30004": "pesan diblokir / message blocked",
    "30005": "nomor tujuan tidak dikenal / unknown destination handset",
    "30006": "nomor telepon rumah atau operator tidak terjangkau / landline or unreachable carrier",
    "30007": "disaring operator / carrier filtering",
    "30008": "kesalahan tak dikenal / unknown error",
    "63016": "di luar jendela 24 jam WhatsApp: hanya template yang disetujui "
             "/ outside the WhatsApp 24-hour window: only approved templates",
}


def describe_error(code: str | int | None, fallback: str = "") -> str:
    code = str(code) if code not in (None, "") else ""
    return f"{code} {ERROR_TEXTS.get(code, fallback)}".strip()


# ------------------------------------------------------------------ phone numbers


def normalise_phone(raw: str, region: str = "ID") -> str:
    """Any way a citizen's number is written (0812…, 62812…, +62 812-…) -> E.164 (+62812…)."""
    text = (raw or "").strip()
    if text.lower().startswith(WA_PREFIX):
        text = text[len(WA_PREFIX):]
    digits = "".join(ch for ch in text if ch.isdigit())
    if not digits:
        raise ValueError(f"not a phone number: {raw!r}")
    code = str(phonenumbers.country_code_for_region(region))
    if text.startswith("+"):
        candidate = "+" + digits
    elif text.startswith("00"):
        candidate = "+" + digits[2:]
    elif digits.startswith(code) and not digits.startswith("0") and len(digits) > len(code) + 6:
        candidate = "+" + digits  # 62812… written without the plus
    else:
        candidate = digits
    try:
        num = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not a phone number: {raw!r} ({exc})") from None
    if not phonenumbers.is_possible_number(num):
        raise ValueError(f"not a possible phone number: {raw!r}")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


# ------------------------------------------------------------------ SMS segments

GSM_BASIC = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
                "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM_EXTENSION = set("\f^{}\\[~]|€")  # sent as ESC + char: two septets each


def sms_encoding(text: str) -> str:
    return "GSM-7" if all(ch in GSM_BASIC or ch in GSM_EXTENSION for ch in text) else "UCS-2"


def _costs(text: str, encoding: str) -> list[int]:
    if encoding == "GSM-7":
        return [2 if ch in GSM_EXTENSION else 1 for ch in text]
    return [len(ch.encode("utf-16-le")) // 2 for ch in text]  # astral characters are surrogate pairs


def segment_count(text: str) -> int:
    """How many SMS segments `text` costs: 160 GSM-7 septets / 70 UCS-2 units alone, else 153 / 67
    per concatenated part; an escape pair or a surrogate pair is never split across parts."""
    enc = sms_encoding(text)
    costs = _costs(text, enc)
    single, per = (160, 153) if enc == "GSM-7" else (70, 67)
    if sum(costs) <= single:
        return 1
    segments, used = 1, 0
    for c in costs:
        if used + c > per:
            segments, used = segments + 1, 0
        used += c
    return segments


def plan_sms(text: str, max_segments: int = 10) -> list[str]:
    """Split a reply into Twilio messages of at most `max_segments` segments and 1600 characters,
    at word boundaries, numbered "(1/3) " when there is more than one. Nothing is dropped."""
    text = text.strip()

    def fits(body: str) -> bool:
        return len(body) <= MAX_BODY and segment_count(body) <= max_segments

    if fits(text):
        return [text]
    total = 2
    while True:
        parts = _pack(text.split(" "), lambda i, body: fits(f"({i}/{total}) {body}"))
        if len(parts) <= total:
            return [f"({i}/{len(parts)}) {p}" for i, p in enumerate(parts, 1)]
        total = len(parts)


def _pack(words: list[str], fits: Any) -> list[str]:
    parts: list[str] = []
    current = ""
    for word in words:
        candidate = f"{current} {word}" if current else word
        if fits(len(parts) + 1, candidate):
            current = candidate
            continue
        if current:
            parts.append(current)
        current = word
        while not fits(len(parts) + 1, current):  # a single word longer than a part: cut inside it
            n = 1
            while n < len(current) and fits(len(parts) + 1, current[:n + 1]):
                n += 1
            parts.append(current[:n])
            current = current[n:]
    if current or not parts:
        parts.append(current)
    return parts


def rewriting_client(api_base: str, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    """A TwilioHttpClient that sends https://api.twilio.com/… to `api_base` (a fake or a proxy);
    the real library still builds and parses every request. Keeps the last response, whose
    headers the library's exceptions do not carry (Retry-After)."""
    from twilio.http.http_client import TwilioHttpClient

    base = urlsplit(api_base.rstrip("/"))

    class RewritingHttpClient(TwilioHttpClient):
        def request(self, method, url, *args, **kwargs):  # type: ignore[no-untyped-def, override]
            parts = urlsplit(url)
            if parts.netloc.endswith("twilio.com") and base.netloc and (base.scheme, base.netloc) != (parts.scheme, parts.netloc):
                url = urlunsplit((base.scheme, base.netloc, base.path + parts.path, parts.query, parts.fragment))
            self.last_response = super().request(method, url, *args, **kwargs)  # for Retry-After on 429
            return self.last_response

    return RewritingHttpClient(timeout=timeout, pool_connections=False)


STATUS_MAP = {"accepted": "queued", "scheduled": "queued", "queued": "queued", "sending": "queued",
              "sent": "sent", "delivered": "delivered", "read": "read", "undelivered": "undelivered",
              "failed": "failed", "canceled": "failed"}


def map_status(twilio_status: str | None) -> str | None:
    """Twilio's MessageStatus -> the hub's delivery_state (Twilio's "sending" is not the hub's claim)."""
    return STATUS_MAP.get((twilio_status or "").lower())


# Twilio's default SMS opt-out keywords: Twilio itself stops delivering to the number, so the
# hub records it at once (no ticket for the word "STOP", no replies that would fail with 21610).
STOP_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
START_WORDS = {"START", "YES", "UNSTOP"}


def opt_keyword(params: dict[str, str]) -> str | None:
    kind = (params.get("OptOutType") or "").upper()
    word = (params.get("Body") or "").strip().upper()
    if kind == "STOP" or word in STOP_WORDS:
        return "stop"
    if kind == "START" or word in START_WORDS:
        return "start"
    return None
