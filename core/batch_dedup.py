"""A batch's deduplication decisions (core.batch): for each plain complaint, in order, whether it
repeats the sender's own report, joins another reporter's open case, or opens a ticket.

Reads only (the sender's history, the shared index, the candidates' tickets); the writes that follow
are core.batch's. The batch's own earlier reports count as history and as cases, exactly as if
the messages had come one at a time (`core.pipeline.process` decides the same way).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from core import dedup
from core.classify import Decision
from core.config import AppConfig
from core.db import one_of
from core.dedup_index import Features
from core.location import Place
from core.models import Message, Ticket

M, T = Message.__table__, Ticket.__table__  # type: ignore[attr-defined]


@dataclass
class Item:
    """One message of the batch and what was decided for it."""

    row: Any
    decision: Decision | None = None
    place: Place | None = None
    feats: Features | None = None
    opd: str = "-"
    kind: str = "complaint"
    ticket: int | None = None  # an existing ticket's id
    new: int | None = None  # index into the batch's new tickets (opened by this message or an earlier one)
    opened: bool = False  # this message opened a ticket
    match: dedup.Match | None = None
    ticket_opd: str | None = None  # the OPD of the ticket it opened or joined
    outbound: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # the dedup buckets a lookup reads
    index_names: list[str] = field(default_factory=list)  # the buckets it is stored in, if indexed


def deduplicate(session: Session, cfg: AppConfig, items: list[Item], new_tickets: list[Item]) -> None:
    """Decide, in order, whether each complaint repeats the sender's own report, joins another
    reporter's case, or opens a ticket. Earlier messages of the batch count as history."""
    be = dedup.backend(session, cfg)
    dedup.looking_up(session, be)  # before every read the decisions rest on, the sender's history too
    repeats = _repeat_history(session, cfg, items)
    queries = [it.names for it in items]
    found = be.candidates_many(queries)
    open_now = _open_tickets(session, {d for c in found for d in c})
    batch_docs = _BatchDocs()  # this batch's indexed reports, as later ones see them
    for it, names, cands in zip(items, queries, found):
        f = it.feats
        assert f is not None
        found_match = _repeat(cfg, it, repeats.get(it.row.contact_id, [])) or \
            _case(cfg, it, cands, batch_docs.sharing(names), open_now)
        if found_match is None:
            it.new, it.kind, it.opened, it.ticket_opd = len(new_tickets), "complaint", True, it.decision.opd  # type: ignore[union-attr]
            new_tickets.append(it)
        else:
            it.match, (it.ticket, it.new), it.ticket_opd = found_match
            it.kind = it.match.kind
        repeats.setdefault(it.row.contact_id, []).append((it.row.id, f, (it.ticket, it.new), it.ticket_opd,
                                                          it.row.received_at))
        if indexed(it):
            it.index_names = dedup.index_buckets(cfg, f, it.opd)
            batch_docs.add(it)


class _BatchDocs:
    """The batch's indexed reports by bucket: a report meets only those sharing a bucket with it,
    in batch order, without comparing it with every earlier report."""

    def __init__(self) -> None:
        self.docs: list[Item] = []
        self.by_bucket: dict[str, list[int]] = {}

    def add(self, it: Item) -> None:
        for b in it.index_names:
            self.by_bucket.setdefault(b, []).append(len(self.docs))
        self.docs.append(it)

    def sharing(self, names: list[str]) -> list[Item]:
        return [self.docs[i] for i in sorted({i for b in names for i in self.by_bucket.get(b, ())})]


def indexed(it: Item) -> bool:
    """Later reports can join it: a new routed ticket (not triage), or a report that joined a case."""
    if it.opened:
        return it.decision.opd is not None  # type: ignore[union-attr]
    return it.kind == "case" and it.opd != "-"


def _repeat_history(session: Session, cfg: AppConfig, items: list[Item]) -> dict[int, list[tuple]]:
    """The senders' own reports on open tickets within the repeat window, before this batch."""
    span = timedelta(hours=cfg.dedup.repeat_window_hours)
    contacts = {it.row.contact_id for it in items}
    lo = min(it.row.received_at for it in items) - span
    hi = max(it.row.received_at for it in items) + span
    out: dict[int, list[tuple]] = {}
    for r in session.execute(
            select(M.c.id, M.c.contact_id, M.c.text, M.c.location, M.c.ticket_id, T.c.opd_code, M.c.received_at)
            .join(T, T.c.id == M.c.ticket_id)
            .where(one_of(session, M.c.contact_id, contacts), M.c.direction == "in", M.c.received_at >= lo,
                   M.c.received_at <= hi, T.c.status.in_(dedup.OPEN))):
        out.setdefault(r.contact_id, []).append((r.id, dedup.features_of(r, None), (r.ticket_id, None), r.opd_code,
                                                 r.received_at))
    return out


# A match: the Match (its ticket id is filled in once the batch's new tickets exist), where its ticket
# is ((ticket id, None) or (None, index of a ticket opened earlier in this batch)), and that ticket's OPD.
Found = tuple[dedup.Match, tuple[int | None, int | None], str | None]


def _repeat(cfg: AppConfig, it: Item, history: list[tuple]) -> Found | None:
    """The same sender's own earlier report of this problem (dedup.best_repeat, as the one-at-a-time path)."""
    span = timedelta(hours=cfg.dedup.repeat_window_hours)
    hit = dedup.best_repeat(cfg, it.feats, it.opd, (  # type: ignore[arg-type]
        (other_id, of, (ref, code), code) for other_id, of, ref, code, at in history
        if abs(at - it.row.received_at) <= span))
    if hit is None:
        return None
    score, other_id, reasons, (ref, code) = hit
    return dedup.Match(ticket_id=-1, kind="repeat", score=score,
                       reasons={**reasons, "matched_message": other_id}), ref, code


def _case(cfg: AppConfig, it: Item, cands: dict[int, dict], earlier: list[Item],
          open_now: dict[int, tuple[int, str | None]]) -> Found | None:
    """Another reporter's open case of the same problem (see dedup.find_match): among the index's
    candidates, then among the batch's `earlier` reports sharing a bucket with it."""
    f = it.feats
    assert f is not None
    now, window = it.row.received_at.timestamp(), dedup.window_days(cfg, it.decision.opd) * 86400  # type: ignore[union-attr]
    scored: list[tuple[float, int, dict, Any]] = []
    for doc_id, doc in cands.items():
        if doc.get("o") != it.opd or abs(now - doc["at"]) > window or doc_id not in open_now:
            continue
        tid, code = open_now[doc_id]
        if code is not None and code != it.opd:
            continue
        verdict = dedup.judge(f, Features.of_doc(doc), cfg)
        if verdict is not None:
            scored.append((verdict[0], doc_id, verdict[1], ((tid, None), code)))
    for other in earlier:
        if other.opd != it.opd:
            continue
        verdict = dedup.judge(f, other.feats, cfg)  # type: ignore[arg-type]
        if verdict is not None:
            scored.append((verdict[0], other.row.id, verdict[1], ((other.ticket, other.new), other.ticket_opd)))
    if not scored:
        return None
    score, doc_id, reasons, (ref, code) = max(scored, key=lambda s: s[0])
    return dedup.Match(ticket_id=-1, kind="case", score=score, reasons={**reasons, "matched_message": doc_id}), ref, code


def _open_tickets(session: Session, message_ids: set[int]) -> dict[int, tuple[int, str | None]]:
    """message id -> (ticket id, OPD) for candidates whose ticket is still open."""
    return {mid: (tid, code) for mid, (tid, _status, code) in dedup.open_case_tickets(session, message_ids).items()}
