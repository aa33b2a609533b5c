"""Two workers, one new problem, the same moment: settled after the commit instead of prevented by a lock.

Each worker looks up the shared index before it writes, so two reports of one new problem taken
by two workers at the same moment can each open a ticket. A lock from lookup to commit prevented
that but serialised every worker (a second worker made the hub slower than one). Instead every
index write is numbered (core.dedup_store): a lookup made after reading number N sees every write
up to N. After its commit a worker reads the writes numbered between its lookup and its own write,
the only ones it could have missed, and judges its new tickets against them exactly as a lookup
would. Matching tickets are merged as if the reports had come one at a time: the later report's
ticket joins the earlier report's case (an audited, undoable `dedup.merge` by "worker"). Only the
later writer acts, so a pair is never merged both ways.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from core.config import AppConfig

log = logging.getLogger(__name__)

SETTLE_ATTEMPTS = 4  # SQLite refuses a write whose transaction read before another worker's commit
SETTLE = "aduan_dedup_written"  # session.info key: what the committed transaction wrote to the index


@dataclass
class Written:
    backend: Any
    seen: int  # the index write number visible to the transaction's first lookup
    seq: int  # the number of its own write
    docs: list[tuple[int, dict[str, Any], list[str]]]  # (message id, document, buckets)
    opened: set[int]  # tickets it opened


def settle(session: Session, cfg: AppConfig) -> int:
    """After `session` committed: merge the tickets it opened into concurrent workers' cases of the
    same problem. Returns how many were merged. Never raises: the messages are processed either way."""
    written = session.info.pop(SETTLE, None)
    if written is None or written.seq - written.seen < 2:  # nobody else wrote in between
        return 0
    for attempt in range(1, SETTLE_ATTEMPTS + 1):
        try:
            return _settle(cfg, written)
        except Exception as exc:  # noqa: BLE001 - a missed merge leaves two tickets an operator can merge
            if isinstance(exc, OperationalError) and attempt < SETTLE_ATTEMPTS:
                time.sleep(0.05 * attempt)  # SQLite refused the write; the merge rolled back whole: again
                continue
            log.exception("dedup: could not settle concurrent cases")
            return 0
    return 0


def _settle(cfg: AppConfig, written: Written) -> int:
    """As if the reports had been processed one at a time in the order they were reported: a ticket
    of mine whose first report came after a matching concurrent one joins that one's case; a
    concurrent ticket opened by a later matching report joins mine (or the case mine joined)."""
    from core.db import session_scope
    from core.dedup import open_case_tickets
    from core.models import Message

    mine = {doc_id: doc for doc_id, doc, _ in written.docs}
    others = {i: d for i, d in written.backend.written_between(written.seen, written.seq).items() if i not in mine}
    if not others:
        return 0
    matches = _matches(cfg, written, others)
    if not matches:
        return 0
    merged = 0
    with session_scope() as session:
        ids = set(matches) | {o for found in matches.values() for _, o in found}
        current = open_case_tickets(session, ids)
        opener = set(session.exec(select(Message.id).where(Message.id.in_(ids),  # type: ignore[union-attr]
                                                           Message.kind == "complaint")).all())
        for doc_id, found in matches.items():
            mine_t = current.get(doc_id, (None,))[0]
            if mine_t not in written.opened:
                continue
            first = (mine[doc_id]["at"], doc_id)
            earlier = [(score, o) for score, o in found if (others[o]["at"], o) < first and o in current]
            target = mine_t
            if earlier:
                score, o = max(earlier)
                merged += _merge(session, mine_t, current[o][0], f"pesan {o}, skor {score:.2f}")
                target = current[o][0]
            for score, o in found:
                if (others[o]["at"], o) > first and o in current and o in opener:
                    merged += _merge(session, current[o][0], target, f"pesan {doc_id}, skor {score:.2f}")
    if merged:
        log.info("dedup: merged %d ticket(s) opened at the same moment as another worker's case", merged)
    return merged


def _merge(session: Session, source: int, target: int, why: str) -> int:
    """1 when the case `source` is now part of (still open) was merged into the case `target` is now
    part of, else 0. Both are followed through merges other workers made in the meantime."""
    from core.dedup import OPEN
    from core.dedup_ops import DedupError, merge, merged_into
    from core.models import Ticket

    src, dst = merged_into(session, session.get(Ticket, source)), merged_into(session, session.get(Ticket, target))
    if src is None or dst is None or src.id == dst.id or src.status not in OPEN or dst.status not in OPEN:
        return 0
    try:
        with session.begin_nested():
            merge(session, src.id, dst.id, actor="worker", reason=f"dilaporkan bersamaan ({why})")  # type: ignore[arg-type]
    except DedupError as exc:
        log.warning("dedup: concurrent case not merged: %s", exc)
        return 0
    return 1


def _matches(cfg: AppConfig, written: Written, others: dict[int, dict[str, Any]]) -> dict[int, list[tuple[float, int]]]:
    """My indexed report -> [(score, the other worker's report)] for every concurrent report it matches."""
    from core.dedup import band_ids_many, index_buckets, judge, lookup_buckets, window_days
    from core.dedup_index import Features

    feats = {i: Features.from_json(d["f"]) for i, d in others.items()}
    mine = {doc_id: Features.from_json(doc["f"]) for doc_id, doc, _ in written.docs}
    band_ids_many(cfg, [*feats.values(), *mine.values()])  # one numpy pass for both sides
    by_bucket: dict[str, list[int]] = {}
    for i, d in others.items():
        for b in index_buckets(cfg, feats[i], d["o"]):
            by_bucket.setdefault(b, []).append(i)
    out: dict[int, list[tuple[float, int]]] = {}
    for doc_id, doc, _ in written.docs:
        f, opd = mine[doc_id], doc["o"]
        window = window_days(cfg, opd) * 86400
        for other in sorted({o for b in lookup_buckets(cfg, f, opd) for o in by_bucket.get(b, ())}):
            od = others[other]
            if od["o"] != opd or abs(od["at"] - doc["at"]) > window:
                continue
            # the sender's own earlier report, which the other worker had not committed yet: a repeat
            same_sender = doc.get("c") is not None and doc.get("c") == od.get("c")
            verdict = judge(f, feats[other], cfg, same_sender=same_sender)
            if verdict is not None:
                out.setdefault(doc_id, []).append((verdict[0], other))
    return out
