"""Database tables (SQLModel). Times are stored in UTC; people see them in WIB.

Schema changes go through Alembic (`core/migrations`); `aduan migrate` applies them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Store naive UTC, return aware UTC: SQLite has no time zones, PostgreSQL does."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use aware UTC datetimes")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=timezone.utc) if value is not None else None


def ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=nullable, index=index))


def js(default: Any = None) -> Any:
    factory = (lambda: default.copy()) if isinstance(default, (dict, list)) else (lambda: default)
    return Field(default_factory=factory, sa_column=sa.Column(sa.JSON(), nullable=True))


class OPD(SQLModel, table=True):
    code: str = Field(primary_key=True, max_length=32)
    name: str
    keywords: list = js([])
    active: bool = True


class Citizen(SQLModel, table=True):
    """One person across channels; contacts link to it when an operator (or a shared phone) says so."""

    id: Optional[int] = Field(default=None, primary_key=True)
    display_name: Optional[str] = None
    created_at: Optional[datetime] = ts()
    anonymised_at: Optional[datetime] = ts()


class Contact(SQLModel, table=True):
    """A citizen's identity on one channel: a chat id, an E.164 number, an X user id."""

    __table_args__ = (sa.UniqueConstraint("channel", "address", name="uq_contact_channel_address"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    channel: str = Field(max_length=32, index=True)
    address: str = Field(max_length=200)
    display_name: Optional[str] = None
    citizen_id: Optional[int] = Field(default=None, foreign_key="citizen.id", index=True)
    opted_out: bool = False
    opted_out_reason: Optional[str] = None
    blocked: bool = False
    flagged_at: Optional[datetime] = ts()  # throttled for flooding; shown to admins
    created_at: Optional[datetime] = ts()
    last_inbound_at: Optional[datetime] = ts()


class Ticket(SQLModel, table=True):
    """A case: one real-world problem, with one or more reporters' messages attached."""

    id: Optional[int] = Field(default=None, primary_key=True)
    number: Optional[str] = Field(default=None, max_length=32, unique=True, index=True)
    status: str = Field(default="new", max_length=16, index=True)
    opd_code: Optional[str] = Field(default=None, max_length=32, index=True)
    channel: str = Field(max_length=32)
    contact_id: Optional[int] = Field(default=None, foreign_key="contact.id", index=True)
    subject: str = ""
    triage: bool = Field(default=False, index=True)
    confidence: Optional[float] = None
    model_version: Optional[str] = None
    reasons: list = js([])
    kecamatan: Optional[str] = None
    kelurahan: Optional[str] = None
    street: Optional[str] = None
    landmark: Optional[str] = None
    place_key: Optional[str] = Field(default=None, index=True)
    lat: Optional[float] = None
    lon: Optional[float] = None
    reporters: int = 1
    created_at: Optional[datetime] = ts(index=True)
    routed_at: Optional[datetime] = ts()
    responded_at: Optional[datetime] = ts()
    resolved_at: Optional[datetime] = ts()
    closed_at: Optional[datetime] = ts()
    rejected_at: Optional[datetime] = ts()
    reject_reason: Optional[str] = None
    updated_at: Optional[datetime] = ts()
    # SLA: the clocks pause while the ticket waits on the citizen's answer.
    awaiting_citizen_since: Optional[datetime] = ts()
    sla_paused_seconds: int = 0
    feedback_at: Optional[datetime] = ts()  # first real feedback to the citizen (not the automatic ack)


class Message(SQLModel, table=True):
    """Inbound and outbound messages. Unique on (channel, external_id): a re-delivery is a no-op."""

    __table_args__ = (sa.UniqueConstraint("channel", "external_id", name="uq_message_channel_external"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    direction: str = Field(default="in", max_length=3)  # "in" | "out"
    channel: str = Field(max_length=32)
    external_id: str = Field(max_length=200)
    contact_id: Optional[int] = Field(default=None, foreign_key="contact.id", index=True)
    ticket_id: Optional[int] = Field(default=None, foreign_key="ticket.id", index=True)
    text: str = ""
    sender_display: Optional[str] = None
    attachments: list = js([])
    location: Optional[dict] = js(None)
    in_reply_to: Optional[str] = Field(default=None, max_length=200)
    public: bool = False
    raw: Optional[dict] = js(None)
    received_at: Optional[datetime] = ts(index=True)
    created_at: Optional[datetime] = ts()
    # Inbound processing: stored -> processed (or failed); kind says what the worker made of it.
    state: str = Field(default="stored", max_length=16, index=True)
    kind: Optional[str] = Field(default=None, max_length=24)
    dedup: Optional[dict] = js(None)
    processed_at: Optional[datetime] = ts()
    # Outbound delivery.
    template: Optional[str] = Field(default=None, max_length=32)
    reply_to_id: Optional[int] = Field(default=None, foreign_key="message.id")
    provider_id: Optional[str] = Field(default=None, max_length=200, index=True)
    delivery_state: Optional[str] = Field(default=None, max_length=16, index=True)
    attempts: int = 0
    error: Optional[str] = None
    sent_at: Optional[datetime] = ts()
    author: Optional[str] = Field(default=None, max_length=64)


class Event(SQLModel, table=True):
    """Append-only log of who did what and when (system, worker or a console user)."""

    id: Optional[int] = Field(default=None, primary_key=True)
    at: Optional[datetime] = ts(index=True)
    actor: str = Field(default="system", max_length=64)
    action: str = Field(max_length=48, index=True)
    ticket_id: Optional[int] = Field(default=None, foreign_key="ticket.id", index=True)
    message_id: Optional[int] = Field(default=None, foreign_key="message.id")
    data: Optional[dict] = js(None)


class Cursor(SQLModel, table=True):
    """Where a poller stopped (Telegram offset, X since_id, an Instagram post's last comment)."""

    __table_args__ = (sa.UniqueConstraint("channel", "key", name="uq_cursor_channel_key"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    channel: str = Field(max_length=32)
    key: str = Field(max_length=200)
    value: str = ""
    updated_at: Optional[datetime] = ts()
