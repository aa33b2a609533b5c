"""Two workers, one new problem, the same moment: settled after the commit instead of prevented by a lock.

Each worker looks up the shared index before it writes, so two reports of one new problem taken
by two workers at the same moment can each open a ticket. A lock from lookup to commit prevented
that but serialised every worker (a second worker made the hub slower than one). Instead every
index write is numbered (core.dedup_store): a lookup made after reading number N sees every write
up to N. After its commit a worker reads the writes numbered between its lookup and its own write,
the only ones it could have missed, and judges its new tickets against them exactly as a lookup
would. A match is merged into the other worker's case (an audited, undoable `dedup.merge` by
"worker"). Only the later writer acts, so a pair is never merged both ways.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from core.config import AppConfig

log = logging.getLogger(__name__)

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
    try:
        return _settle(cfg, written)
    except Exception:  # noqa: BLE001 - a missed merge leaves two tickets an operator can merge
        log.exception("dedup: could not settle concurrent cases")
        return 0


def _settle(cfg: AppConfig, written: Written) -> int:
    from core.db import session_scope

    mine = {doc_id for doc_id, _, _ in written.docs}
    others = {i: d for i, d in written.backend.written_between(written.seen, written.seq).items() if i not in mine}
    if not others:
        return 0
    pairs = _pairs(cfg, written, others)
    if not pairs:
        return 0
    from core.dedup import OPEN, open_case_tickets
    from core.dedup_ops import DedupError, merge
    from core.models import Ticket

    merged = 0
    with session_scope() as session:
        current = open_case_tickets(session, mine | {other for _, other, _ in pairs})
        for doc_id, other, score in pairs:
            src, dst = current.get(doc_id), current.get(other)
            if src is None or dst is None or src[0] not in written.opened or dst[0] in written.opened:
                continue
            ticket = session.get(Ticket, src[0])
            if ticket is None or ticket.status not in OPEN or src[0] == dst[0]:
                continue  # already merged (two of this batch's tickets matched one case)
            try:
                with session.begin_nested():
                    merge(session, src[0], dst[0], actor="worker",
                          reason=f"dilaporkan bersamaan (pesan {other}, skor {score:.2f})")
            except DedupError as exc:
                log.warning("dedup: concurrent case not merged: %s", exc)
                continue
            merged += 1
    if merged:
        log.info("dedup: merged %d ticket(s) opened at the same moment as another worker's case", merged)
    return merged


def _pairs(cfg: AppConfig, written: Written, others: dict[int, dict[str, Any]]) -> list[tuple[int, int, float]]:
    """(my message, the other worker's message, score) for each of my indexed reports that matches one."""
    from core.dedup import index_buckets, judge, lookup_buckets, window_days
    from core.dedup_index import Features

    feats = {i: Features.from_json(d["f"]) for i, d in others.items()}
    by_bucket: dict[str, list[int]] = {}
    for i, d in others.items():
        for b in index_buckets(cfg, feats[i], d["o"]):
            by_bucket.setdefault(b, []).append(i)
    pairs = []
    for doc_id, doc, _ in written.docs:
        f, opd = Features.from_json(doc["f"]), doc["o"]
        window = window_days(cfg, opd) * 86400
        best: tuple[float, int] | None = None
        for other in {o for b in lookup_buckets(cfg, f, opd) for o in by_bucket.get(b, ())}:
            od = others[other]
            if od["o"] != opd or abs(od["at"] - doc["at"]) > window:
                continue
            verdict = judge(f, feats[other], cfg)
            if verdict is not None and (best is None or verdict[0] > best[0]):
                best = (verdict[0], other)
        if best is not None:
            pairs.append((doc_id, best[1], best[0]))
    return pairs
