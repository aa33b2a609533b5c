"""Tables the console adds: console users, operators' routing labels, canned responses, settings
and @mention notifications.

The audit log is the shared append-only `core.models.Event` table (actor = username,
data = {"before": ..., "after": ..., "reason": ...}), so one timeline shows what the
workers and the people did.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.models import ts

ROLES = ("admin", "operator", "opd", "viewer")
LABEL_SOURCES = ("confirmed", "rerouted", "merge", "split")


class User(SQLModel, table=True):
    """A console account. `opd_code` is set for OPD officers only (role 'opd')."""

    __tablename__ = "console_user"  # "user" is a reserved word in PostgreSQL

    id: Optional[int] = Field(default=None, primary_key=True)
    username: str = Field(max_length=32, unique=True, index=True)
    display_name: str = ""
    role: str = Field(max_length=16)  # admin | operator | opd | viewer
    opd_code: Optional[str] = Field(default=None, max_length=32)
    password_hash: str
    active: bool = True
    created_at: Optional[datetime] = ts()
    password_changed_at: Optional[datetime] = ts()
    last_login_at: Optional[datetime] = ts()
    # Where @mentions are also sent, as config.yaml's notify targets: {"channel": "telegram", "address": "..."}
    notify: Optional[dict] = Field(default=None, sa_column=sa.Column(sa.JSON(), nullable=True))


class Label(SQLModel, table=True):
    """A training example for the classifier, written when a person confirms or corrects routing.

    The classifier reads `SELECT text, opd FROM label`; `opd` is None for "not a complaint".
    """

    id: Optional[int] = Field(default=None, primary_key=True)
    text: str
    opd: Optional[str] = Field(default=None, max_length=32, index=True)
    source: str = Field(max_length=16)  # confirmed | rerouted | merge | split
    reason: Optional[str] = None
    ticket_id: Optional[int] = Field(default=None, foreign_key="ticket.id", index=True)
    actor: str = Field(max_length=64)
    created_at: Optional[datetime] = ts()


class CannedResponse(SQLModel, table=True):
    """A ready-made reply; `opd_code` None means every OPD and the media center may use it."""

    id: Optional[int] = Field(default=None, primary_key=True)
    opd_code: Optional[str] = Field(default=None, max_length=32, index=True)
    title: str = Field(max_length=120)
    text: str
    updated_by: Optional[str] = Field(default=None, max_length=64)
    updated_at: Optional[datetime] = ts()


class Setting(SQLModel, table=True):
    """A value an admin changed in the console; it wins over config.yaml (key = dotted config path)."""

    key: str = Field(primary_key=True, max_length=200)
    value: Optional[Any] = Field(default=None, sa_column=sa.Column(sa.JSON(), nullable=True))
    updated_by: Optional[str] = Field(default=None, max_length=64)
    updated_at: Optional[datetime] = ts()


class Mention(SQLModel, table=True):
    """An @mention of a console user in an internal note: their notification in the console header
    and under "Disebut", read once they open it. Only written for users who may see the ticket."""

    id: Optional[int] = Field(default=None, primary_key=True)
    username: str = Field(max_length=32, index=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    event_id: Optional[int] = Field(default=None, foreign_key="event.id")  # the note
    author: str = Field(max_length=64)
    created_at: Optional[datetime] = ts()
    read_at: Optional[datetime] = ts()
    message_id: Optional[int] = Field(default=None, foreign_key="message.id")  # copy sent to the user's notify target
