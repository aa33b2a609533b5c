"""Deduplication. FIRST CUT: re-delivery (unique key) and the same sender repeating themselves.

Interface used by the pipeline: `find_match`, `index`, `has_reported`, `Match`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta

from sqlmodel import Session, select

from core.classify import Decision
from core.config import AppConfig
from core.location import Place
from core.models import Message, Ticket

OPEN = ("new", "routed", "responded")
_WORD = re.compile(r"\w+")


@dataclass
class Match:
    ticket_id: int
    kind: str  # "repeat" (same sender) | "case" (another reporter, same problem)
    score: float
    reasons: dict = field(default_factory=dict)


def _tokens(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) > 2}


def jaccard(a: str, b: str) -> float:
    ta, tb = _tokens(a), _tokens(b)
    return len(ta & tb) / len(ta | tb) if ta and tb else 0.0


def find_match(session: Session, cfg: AppConfig, msg: Message, decision: Decision, place: Place) -> Match | None:
    """An open ticket this message belongs to, or None for a new case."""
    since = msg.received_at - timedelta(hours=cfg.dedup.repeat_window_hours)
    rows = session.exec(
        select(Message.text, Message.ticket_id).join(Ticket, Ticket.id == Message.ticket_id)
        .where(Message.contact_id == msg.contact_id, Message.direction == "in", Message.id != msg.id,
               Message.received_at >= since, Message.received_at <= msg.received_at, Ticket.status.in_(OPEN))
    ).all()
    best: Match | None = None
    for text, ticket_id in rows:
        score = jaccard(text or "", msg.text or "")
        if score >= cfg.dedup.repeat_similarity and (best is None or score > best.score):
            best = Match(ticket_id=ticket_id, kind="repeat", score=round(score, 3), reasons={"same_sender": True})
    return best


def index(session: Session, cfg: AppConfig, ticket: Ticket, msg: Message) -> None:
    """Remember a new case for later near-duplicate lookups (no-op in the first cut)."""


def has_reported(session: Session, ticket_id: int | None, contact_id: int | None, exclude_id: int | None) -> bool:
    row = session.exec(select(Message.id).where(Message.ticket_id == ticket_id, Message.contact_id == contact_id,
                                                Message.direction == "in", Message.id != exclude_id)).first()
    return row is not None
