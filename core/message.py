"""The one normalised message every connector produces and the queue carries.

It round-trips through JSON exactly (``InboundMessage.model_validate_json(m.to_json()) == m``),
so jobs carry plain JSON and never pickled SDK objects.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

AttachmentKind = Literal["photo", "video", "audio", "document", "sticker", "other"]


class Attachment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: AttachmentKind = "other"
    ref: str = Field(min_length=1, description="provider file id or URL")
    mime_type: str | None = None
    size: int | None = Field(default=None, ge=0)
    name: str | None = None


class GeoPoint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    label: str | None = None


class InboundMessage(BaseModel):
    """A citizen's message as the hub sees it, whatever channel it came from."""

    model_config = ConfigDict(extra="forbid")

    channel: str = Field(min_length=1, max_length=32)
    external_id: str = Field(min_length=1, max_length=200)
    sender: str = Field(min_length=1, max_length=200)
    sender_display: str | None = Field(default=None, max_length=200)
    text: str = Field(default="", max_length=20_000)
    received_at: AwareDatetime
    attachments: list[Attachment] = []
    location: GeoPoint | None = None
    in_reply_to: str | None = None
    public: bool = False  # True when the conversation is visible to everyone (a tweet, a comment)
    raw: dict[str, Any] = {}

    @field_validator("text")
    @classmethod
    def _clean_text(cls, v: str) -> str:
        # NUL bytes are not storable in PostgreSQL text and never meaningful.
        return v.replace("\x00", "")

    @field_validator("received_at")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return v.astimezone(timezone.utc)

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, data: str | bytes) -> "InboundMessage":
        return cls.model_validate_json(data)
