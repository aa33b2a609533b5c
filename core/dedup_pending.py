"""What a transaction owes the dedup index: its reports are written once it commits, never before.

A report is a candidate for later lookups only when its ticket exists, so the index write waits for
the outer commit (a savepoint's release fires SQLAlchemy's after_commit too) and a rollback drops
it. The transaction also notes how far the index was visible to its first lookup and which tickets
it opened, for settling races with other workers afterwards (core.dedup_race).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import event
from sqlmodel import Session

log = logging.getLogger("core.dedup")

_STASH = "aduan_dedup_pending"


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint released: the outer transaction may still roll back
        return
    pending = session.info.pop(_STASH, None)
    if not pending:
        return
    _write_index(session, pending)


def _write_index(session: Session, pending: dict[str, Any]) -> None:
    by_backend: dict[int, tuple[Any, list]] = {}
    for be, doc_id, doc, buckets in pending.get("add", []):
        by_backend.setdefault(id(be), (be, []))[1].append((doc_id, doc, buckets))
    for be, docs in by_backend.values():
        try:
            seq = be.add_many(docs)
        except Exception:  # noqa: BLE001 - the cases exist; only later lookups lose them
            log.exception("dedup: could not index %d message(s)", len(docs))
            continue
        if pending.get("opened") and "seen" in pending:  # for core.dedup_race.settle, after the commit
            from core.dedup_race import SETTLE, Written

            session.info[SETTLE] = Written(be, pending["seen"], seq, docs, set(pending["opened"]))


def _after_transaction_end(session: Session, tx: Any) -> None:
    if tx.parent is None and not tx.nested:  # the outer transaction ended: a rollback indexes nothing
        session.info.pop(_STASH, None)


def stash(session: Session) -> dict[str, Any]:
    if not session.info.get("aduan_dedup_hooked"):
        session.info["aduan_dedup_hooked"] = True
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_transaction_end", _after_transaction_end)
    return session.info.setdefault(_STASH, {"add": []})


def looking_up(session: Session, be: Any) -> None:
    """Before the transaction's first lookup: note how far the index was visible (core.dedup_race)."""
    st = stash(session)
    if "seen" not in st:
        st["seen"] = be.seq()


def opened(session: Session, ticket_ids: Iterable[int]) -> None:
    """Tickets this transaction opened: merged into another worker's concurrent case if they turn out
    to be the same problem (core.dedup_race)."""
    stash(session).setdefault("opened", set()).update(ticket_ids)


def pending_candidates(session: Session, names: list[str]) -> dict[int, dict]:
    """Cases opened earlier in this same transaction (a worker's batch): not in the index until commit.
    Copies: judging one caches its parsed features in it (Features.of_doc), and the stashed ones
    are written to the index as they are."""
    wanted = set(names)
    return {doc_id: dict(doc) for _be, doc_id, doc, buckets in session.info.get(_STASH, {}).get("add", [])
            if wanted.intersection(buckets)}
