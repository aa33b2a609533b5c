"""Open311 GeoReport v2 as a channel: service requests POSTed by civic apps become citizen messages.

The HTTP side lives in `core.open311` (the GeoReport routes, mounted when this channel is
enabled); this class only normalises one accepted POST into an `InboundMessage` and "sends"
replies. A GeoReport client has no inbox: it polls `GET requests/{id}` and reads our answers in
`status_notes`, so `send` only records the reply as delivered and calls no provider.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from connectors.base import ChannelSettings, Connector, Outgoing, ParseError, SendResult, strict_parse
from core.message import Attachment, GeoPoint, InboundMessage


class Open311Settings(ChannelSettings):
    max_text: int = 20_000
    max_days: int = 90  # the spec's largest start_date..end_date span
    max_results: int = 1000  # the spec's suggested default page


class Open311Connector(Connector):
    name: ClassVar[str] = "open311"
    Settings = Open311Settings
    settings: Open311Settings

    @classmethod
    @strict_parse
    def parse(cls, raw: dict[str, Any]) -> InboundMessage | None:
        """{"id", "client", "received_at", "form": {GeoReport POST fields}} -> InboundMessage."""
        if not isinstance(raw, dict) or not isinstance(raw.get("form"), dict) or not raw.get("id"):
            raise ParseError("not an Open311 submission: id and form are required")
        form = raw["form"]
        text = str(form.get("description") or "").strip()
        if not text:
            raise ParseError("description is required")
        location = None
        if form.get("lat") not in (None, "") and form.get("long") not in (None, ""):
            location = GeoPoint(lat=float(form["lat"]), lon=float(form["long"]),
                                label=form.get("address_string") or None)
        attachments = []
        if form.get("media_url"):
            attachments.append(Attachment(kind="photo", ref=str(form["media_url"])))
        who = form.get("account_id") or form.get("device_id") or form.get("email") or "anonim"
        return InboundMessage(
            channel="open311", external_id=str(raw["id"]), sender=f"{raw.get('client', '?')}:{who}"[:200],
            sender_display=" ".join(p for p in (form.get("first_name"), form.get("last_name")) if p) or None,
            text=text, received_at=datetime.fromisoformat(str(raw["received_at"])),
            attachments=attachments, location=location, public=False, raw=raw,
        )

    def send(self, out: Outgoing) -> SendResult:
        """Nothing to call: the answer is published through GeoReport `status_notes`."""
        return SendResult(provider_id=f"open311:{out.idempotency_key}", state="delivered")
