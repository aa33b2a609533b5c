"""Pollers' cursors (Telegram offset, X since_id, Instagram per-post markers), kept in the database
so a restart neither skips nor repeats."""

from __future__ import annotations

from sqlmodel import select

from core.db import session_scope
from core.models import Cursor, utcnow


def load_cursor(channel: str, key: str) -> str | None:
    with session_scope() as s:
        row = s.exec(select(Cursor).where(Cursor.channel == channel, Cursor.key == key)).first()
        return row.value if row else None


def save_cursor(channel: str, key: str, value: str) -> None:
    with session_scope() as s:
        row = s.exec(select(Cursor).where(Cursor.channel == channel, Cursor.key == key)).first()
        if row is None:
            row = Cursor(channel=channel, key=key)
        row.value, row.updated_at = value, utcnow()
        s.add(row)
