"""WhatsApp through Twilio: the same API and webhook as SMS, with WhatsApp's own rules.

Messages from `whatsapp:+62…` arrive on `/webhooks/sms` (or `/webhooks/whatsapp`, the same
handler) and become channel "whatsapp" with their own templates. WhatsApp has no SMS segments,
but it has the 24-hour customer-service window: a free-form reply is only allowed within 24 h
of the citizen's last message. Outside it the hub does not call Twilio (which would fail with
63016 after charging a request); it sends the approved template configured as
`template_content_sid`, or records the reply as failed with the reason on the ticket.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

from pydantic import Field

from connectors.base import strict_parse
from connectors.base import Outgoing, PermanentError, SendResult, split_text
from connectors.sms import SmsConnector, TwilioSettings, parse_twilio, twilio_router
from connectors.twilio_common import MAX_BODY, WA_PREFIX, normalise_phone
from core.message import InboundMessage

WINDOW_REASON = ("di luar jendela 24 jam WhatsApp: hanya template yang disetujui yang boleh dikirim "
                 "(pesan terakhir warga: {last}) / outside the WhatsApp 24-hour window: only approved templates")


class WhatsAppSettings(TwilioSettings):
    from_number: str | None = None  # the WhatsApp sender, +62… (the whatsapp: prefix is added)
    window_hours: int = Field(default=24, ge=1, le=24)
    template_content_sid: str | None = Field(default=None, pattern=r"^HX[0-9a-fA-F]{32}$")
    template_variable: str = "1"  # the template's variable that carries the reply text


def last_inbound_from_db(address: str) -> datetime | None:
    """When this WhatsApp contact last wrote to the hub (the start of the service window)."""
    from sqlmodel import select

    from core.db import session_scope
    from core.models import Contact

    with session_scope() as s:
        return s.exec(select(Contact.last_inbound_at).where(Contact.channel == "whatsapp",
                                                            Contact.address == address)).first()


class WhatsAppConnector(SmsConnector):
    name: ClassVar[str] = "whatsapp"
    Settings = WhatsAppSettings
    settings: WhatsAppSettings

    def __init__(self, settings: WhatsAppSettings,
                 last_inbound: Callable[[str], datetime | None] | None = None):
        super().__init__(settings)
        self.last_inbound = last_inbound or last_inbound_from_db

    @classmethod
    @strict_parse
    def parse(cls, raw: dict[str, Any]) -> InboundMessage | None:
        return parse_twilio(raw)

    def address(self, to: str) -> str:
        return WA_PREFIX + normalise_phone(to, self.settings.default_region)

    def sender_address(self) -> str:
        number = self.settings.from_number or ""
        return number if number.startswith(WA_PREFIX) else WA_PREFIX + number

    def plan(self, text: str) -> tuple[list[str], int]:
        """WhatsApp has no segments; Twilio still caps a body at 1600 characters."""
        bodies = split_text(text, MAX_BODY)
        return bodies, len(bodies)

    def in_window(self, to: str) -> tuple[bool, datetime | None]:
        last = self.last_inbound(normalise_phone(to, self.settings.default_region))
        if last is None:
            return False, None
        if last.tzinfo is None:
            last = last.replace(tzinfo=timezone.utc)
        return datetime.now(timezone.utc) - last < timedelta(hours=self.settings.window_hours), last

    def send(self, out: Outgoing) -> SendResult:
        try:
            to = self.address(out.to)
        except ValueError as exc:
            raise PermanentError(f"cannot send a WhatsApp message to {out.to!r}: {exc}", code="bad_address") from None
        inside, last = self.in_window(out.to)
        if inside:
            return super().send(out)
        if not self.settings.template_content_sid:
            shown = _wib(last) if last else "belum pernah / never"
            raise PermanentError(WINDOW_REASON.format(last=shown), code="whatsapp_window")
        variables = {self.settings.template_variable: " ".join(out.text.split())[:1000]}
        params = {**self.create_params(to), "content_sid": self.settings.template_content_sid,
                  "content_variables": json.dumps(variables, ensure_ascii=False)}
        return self.create_all(out, [params], parts=1)

    def router(self) -> Any:
        """Both paths work: Twilio's WhatsApp sender may point at either."""
        api = twilio_router(self, "/webhooks/whatsapp")
        api.include_router(twilio_router(self, "/webhooks/sms"))
        return api


def _wib(when: datetime) -> str:
    from zoneinfo import ZoneInfo

    return when.astimezone(ZoneInfo("Asia/Jakarta")).strftime("%d-%m-%Y %H:%M WIB")
