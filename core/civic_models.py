"""Tables for the civic features: e-Musrenbang proposals (with their decision history and the
Telegram conversation that collects them) and the API keys admins issue for Open311 clients.

A proposal keeps the proposer's identity (contact, or name/phone from the web form) apart from
what is published: public pages and exports read only the columns named in `PUBLIC_FIELDS`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Optional

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.models import js, ts

# diajukan -> verifikasi kelurahan -> verifikasi kecamatan -> keputusan OPD/Bappeda
PROPOSAL_STATUSES = ("diajukan", "lolos_kelurahan", "lolos_kecamatan", "diterima", "ditolak")
PUBLIC_FIELDS = ("number", "title", "description", "kelurahan", "kecamatan", "lat", "lon", "year", "status",
                 "opd_code", "reason", "created_at", "decided_at")


class Proposal(SQLModel, table=True):
    """A citizen's development proposal for the Musrenbang (from Telegram or the public web form)."""

    __table_args__ = (sa.UniqueConstraint("number", name="uq_proposal_number"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    number: Optional[str] = Field(default=None, max_length=32, index=True)
    channel: str = Field(max_length=32)  # telegram | web
    contact_id: Optional[int] = Field(default=None, foreign_key="contact.id", index=True)
    source_message_id: Optional[int] = Field(default=None, foreign_key="message.id")  # replies answer it
    proposer_name: Optional[str] = Field(default=None, max_length=120)  # personal: never published
    proposer_phone: Optional[str] = Field(default=None, max_length=32)  # personal: never published
    title: str = Field(max_length=200)
    description: str = ""
    photo: Optional[dict] = js(None)  # core.media.store() result, or {"ref": file id, "refused": why}
    lat: Optional[float] = None
    lon: Optional[float] = None
    kelurahan: Optional[str] = Field(default=None, max_length=80, index=True)
    kecamatan: Optional[str] = Field(default=None, max_length=80, index=True)
    year: int = Field(index=True)
    status: str = Field(default="diajukan", max_length=24, index=True)
    opd_code: Optional[str] = Field(default=None, max_length=32, index=True)  # set at kecamatan step
    reason: Optional[str] = None  # the decision's reason (mandatory for ditolak and diterima)
    created_at: Optional[datetime] = ts(index=True)
    updated_at: Optional[datetime] = ts()
    decided_at: Optional[datetime] = ts()


class ProposalEvent(SQLModel, table=True):
    """Append-only history of a proposal: submission and each verification decision."""

    id: Optional[int] = Field(default=None, primary_key=True)
    proposal_id: int = Field(foreign_key="proposal.id", index=True)
    at: Optional[datetime] = ts()
    actor: str = Field(max_length=64)
    action: str = Field(max_length=32)  # submitted | approve | reject | accept
    from_status: Optional[str] = Field(default=None, max_length=24)
    to_status: str = Field(max_length=24)
    reason: Optional[str] = None


class ProposalDraft(SQLModel, table=True):
    """The Telegram conversation in progress for one contact (one at a time)."""

    contact_id: int = Field(primary_key=True, foreign_key="contact.id")
    step: str = Field(max_length=24)  # title | description | photo | location | kelurahan
    data: dict = js({})
    started_at: Optional[datetime] = ts()
    updated_at: Optional[datetime] = ts()


class ApiKey(SQLModel, table=True):
    """An Open311 client's key: only its SHA-256 is stored (keys are 32 random bytes, so a fast hash is enough)."""

    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(max_length=80)
    key_hash: str = Field(max_length=64, unique=True, index=True)
    created_at: Optional[datetime] = ts()
    created_by: Optional[str] = Field(default=None, max_length=64)
    last_used_at: Optional[datetime] = ts()
    revoked_at: Optional[datetime] = ts()
