"""Deduplication: one case per real-world problem, however many times and channels it is reported.

Layers (the pipeline calls `find_match` before opening a ticket and `index` after):
1. Re-delivery: the unique (channel, external_id) in intake and the pipeline's transactional
   claim; nothing to do here.
2. Same sender repeating within `repeat_window_hours`: joins their open ticket, kind "repeat".
3. Many reporters, one problem: candidates from the shared index (core.dedup_index), confirmed
   by `judge`: same OPD, shared problem words (not only a state such as "rusak"), the same
   place (place words, place key or geo distance) and the OPD's time window, measured on the
   messages' own `received_at` so an imported history is deduplicated exactly as live.
   Candidates are finally checked against the database (the message's *current* ticket, open,
   same OPD), so operators' merges and splits are respected without touching the index.

Workers take no lock: two reports of one new problem processed at the same moment by two workers
may each open a ticket; the later of the two to commit then merges the later report's ticket into
the earlier report's case (core.dedup_race), so they still end as one case. Operators'
`merge` and `split` live here too; both are logged with what the automatic decision saw, as
examples for tuning the thresholds (`examples`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from core.classify import Decision
from core.config import AppConfig
from core.db import one_of
from core.dedup_index import HEADS, STATES, Features, bucket_names, distance_m, features, same_place
from core.dedup_pending import looking_up, opened, pending_candidates, stash  # noqa: F401
from core.dedup_store import MemoryBackend, RedisBackend
from core.location import Place
from core.lsh import lsh_params, word_bands, word_bands_many
from core.models import Message, Ticket

log = logging.getLogger(__name__)

OPEN = ("new", "routed", "responded")
_MEMORY: dict[str, MemoryBackend] = {}
_FORCE_MEMORY = False  # set by eval/bench: never touch Redis


@dataclass
class Match:
    ticket_id: int
    kind: str  # "repeat" (same sender) | "case" (another reporter, same problem)
    score: float
    reasons: dict = field(default_factory=dict)


def jaccard(a: frozenset[str] | set[str], b: frozenset[str] | set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def window_days(cfg: AppConfig, opd: str | None) -> int:
    return cfg.dedup.per_opd_window_days.get(opd or "", cfg.dedup.case_window_days)


def place_verdict(a: Features, b: Features, geo_m: float) -> tuple[bool, bool, dict[str, Any]]:
    """(same place, different places, evidence). Neither when a report does not say where."""
    ev: dict[str, Any] = {}
    if a.lat is not None and b.lat is not None and a.lon is not None and b.lon is not None:
        dist = distance_m(a.lat, a.lon, b.lat, b.lon)
        ev["distance_m"] = round(dist)
        if dist <= geo_m:
            return True, False, ev
        if dist > 3 * geo_m:
            return False, True, ev
    pa, pb = a.nums, b.nums
    for prefix in ("rt", "rw", "gang"):  # RT 3 and RT 5 of one street are different places
        xa = {x for x in pa if x.startswith(prefix) and x[len(prefix):].isdigit()}
        xb = {x for x in pb if x.startswith(prefix) and x[len(prefix):].isdigit()}
        if xa and xb and not xa & xb:
            ev["numbers"] = sorted(xa | xb)
            return False, True, ev
    if a.kel and b.kel and a.kel != b.kel:
        ev["kelurahan"] = [a.kel, b.kel]
        return False, True, ev
    shared = same_place(a.where, b.where)
    if shared:
        ev["place_terms"] = sorted(shared)
        return True, False, ev
    if a.place and b.place:  # both name a street or landmark, and not the same one
        return False, True, ev
    if a.kel and a.kel == b.kel:
        ev["kelurahan"] = a.kel
        return True, False, ev
    return False, False, ev  # unknown words alone never separate two reports (they are often typos)


def problem_overlap(a: frozenset[str], b: frozenset[str]) -> float:
    """How much two reports' problems agree: on the things named (HEADS) when both name one, else on
    the other problem words, else on states ("mati", "bocor"); overlap of the smaller set."""
    ha, hb = heads(a), heads(b)
    if ha or hb:
        return len(ha & hb) / min(len(ha), len(hb)) if ha and hb else 0.0
    for pick in (lambda s: s - STATES, lambda s: s):
        xa, xb = pick(a), pick(b)
        if xa and xb:
            return len(xa & xb) / min(len(xa), len(xb))
    return 0.0


def _same_subject(a: Features, b: Features) -> bool:
    """Each report's first-named thing is among the things the other names."""
    if not a.primary or not b.primary:
        return True
    return a.primary in heads(b.problem) and b.primary in heads(a.problem)


def heads(problem: frozenset[str]) -> frozenset[str]:
    """The things a report is about; water itself when nothing else is named ("air mati")."""
    found = problem & HEADS
    return found or (frozenset({"air"}) if "air" in problem else found)


def judge(a: Features, b: Features, cfg: AppConfig, same_sender: bool = False) -> tuple[float, dict] | None:
    """(score, reasons) when two reports describe one problem at one place, else None. Pure."""
    d = cfg.dedup
    shared = a.problem & b.problem
    sim = jaccard(a.words, b.words)
    if not shared:
        if same_sender and sim >= 0.8:  # a copy with the problem word misspelt
            return round(sim, 3), {"similarity": round(sim, 3), "same_sender": True}
        return None
    pj = problem_overlap(a.problem, b.problem)
    if pj < d.problem_overlap and not (same_sender and sim >= d.repeat_similarity):
        return None  # a pothole and a dead street light at one street: two problems
    if not _same_subject(a, b) and not (same_sender and sim >= d.repeat_similarity):
        return None  # "saluran tersumbat sampah" is about the drain, not the rubbish heap
    place_ok, conflict, evidence = place_verdict(a, b, d.geo_distance_m)
    reasons: dict[str, Any] = {"similarity": round(sim, 3), "problem_terms": sorted(shared),
                               "problem_overlap": round(pj, 3), **evidence}
    if same_sender:
        reasons["same_sender"] = True
    if conflict:
        return None
    if place_ok or same_sender:
        ok = True
    else:  # at least one report does not say where: only near-identical wording counts
        ok = sim >= d.wording_similarity
    if not ok:
        return None
    score = 0.5 * sim + 0.3 * pj + 0.2 * (1.0 if place_ok else 0.0)
    return round(score, 3), reasons


# ---------------------------------------------------------------- the index


def _use_redis() -> bool:
    if _FORCE_MEMORY:
        return False
    if os.environ.get("REDIS_URL"):
        return True
    try:
        from rq import get_current_job

        return get_current_job() is not None  # a worker always has (embedded) Redis
    except Exception:  # noqa: BLE001
        return False


def backend(session: Session, cfg: AppConfig) -> MemoryBackend | RedisBackend:
    if _use_redis():
        from core.redisconn import get_redis

        days = max([cfg.dedup.case_window_days, *cfg.dedup.per_opd_window_days.values()])
        be = RedisBackend(get_redis(), ttl_seconds=(days + 1) * 86400)
        # A new or flushed Redis (or a history imported with --inline) learns the open cases once.
        if be.r.set(RedisBackend.PREFIX + "warmed", "1", nx=True):
            _warm(session, cfg, be)
        return be
    url = str(session.get_bind().url)
    mem = _MEMORY.get(url)
    if mem is None:
        mem = _MEMORY[url] = MemoryBackend()
    if not mem.warmed:
        mem.warmed = True
        _warm(session, cfg, mem)
    return mem


def reset_memory() -> None:
    """Forget the in-process indexes (tests, eval runs on a fresh database)."""
    _MEMORY.clear()


def _warm(session: Session, cfg: AppConfig, mem: MemoryBackend | RedisBackend) -> None:
    """Rebuild the index from the open cases of the database (a new --inline run, a new Redis)."""
    from core.pipeline import locate

    latest = session.exec(select(func.max(Message.received_at)).where(Message.direction == "in")).one()
    if latest is None:
        return
    days = max([cfg.dedup.case_window_days, *cfg.dedup.per_opd_window_days.values()])
    rows = session.exec(
        select(Message, Ticket.opd_code).join(Ticket, Ticket.id == Message.ticket_id)
        .where(Message.direction == "in", Message.kind.in_(("complaint", "case")), Ticket.status.in_(OPEN),
               Ticket.opd_code.is_not(None), Message.received_at >= latest - timedelta(days=days))
        .order_by(Message.received_at)
    ).all()
    for msg, opd in rows:
        doc, buckets = _doc(cfg, msg, features_of(msg, locate(msg)), opd)
        mem.add(msg.id, doc, buckets)


def features_of(msg: Message, place: Place | None) -> Features:
    loc = msg.location or {}
    if place is None:  # a sender's earlier report, judged again for each of their new ones
        return _plain_features(msg.text or "", loc.get("lat"), loc.get("lon"))
    return features(msg.text or "", place, loc.get("lat"), loc.get("lon"))


@lru_cache(maxsize=2048)
def _plain_features(text: str, lat: float | None, lon: float | None) -> Features:
    return features(text, None, lat, lon)  # immutable: safe to share


def _doc(cfg: AppConfig, msg: Message, f: Features, opd: str) -> tuple[dict[str, Any], list[str]]:
    return _document(msg, f, opd), index_buckets(cfg, f, opd)


def _document(msg: Any, f: Features, opd: str) -> dict[str, Any]:
    """What the index keeps of a report (a lookup judges it without reading the database)."""
    assert msg.received_at is not None
    return {"m": msg.id, "o": opd, "at": msg.received_at.timestamp(), "f": f.to_json(), "c": msg.contact_id}


def _opd_key(decision: Decision) -> str:
    return decision.opd or decision.candidate or "-"


def index_buckets(cfg: AppConfig, f: Features, opd: str) -> list[str]:
    """The buckets a report is stored in (what a later lookup must share with it)."""
    return lookup_buckets(cfg, f, opd, neighbours=False)


def band_ids_many(cfg: AppConfig, feats: list[Features]) -> None:
    """Compute the LSH band ids of a batch's reports together (kept for lookup_buckets)."""
    bands, rows = lsh_params(cfg.dedup.lsh_threshold, cfg.dedup.num_perm)
    word_bands_many([f.words for f in feats], cfg.dedup.num_perm, bands, rows)


def lookup_buckets(cfg: AppConfig, f: Features, opd: str, neighbours: bool = True) -> list[str]:
    """The buckets a lookup for a report reads (neighbours: the geo cells around it too)."""
    bands, rows = lsh_params(cfg.dedup.lsh_threshold, cfg.dedup.num_perm)
    ids = word_bands(f.words, cfg.dedup.num_perm, bands, rows)
    return bucket_names(f, opd, None, bands, rows, neighbours=neighbours, band_ids=list(ids) if ids else None)


def remember_many(session: Session, cfg: AppConfig, reports: list[tuple[Any, Features, str, list[str]]]) -> None:
    """Queue (message row, features, OPD, its index buckets) reports for the index; written once the
    transaction commits."""
    if not reports:
        return
    be = backend(session, cfg)
    st = stash(session)
    for row, f, opd, buckets in reports:
        st["add"].append((be, row.id, _document(row, f, opd), buckets))


# ---------------------------------------------------------------- pipeline interface


def find_match(session: Session, cfg: AppConfig, msg: Message, decision: Decision, place: Place) -> Match | None:
    """The open ticket this report belongs to (a repeat of the sender's own, or another reporter's case)."""
    f = features_of(msg, place)
    opd = _opd_key(decision)
    session.info["aduan_dedup_features"] = (msg.id, f)
    be = backend(session, cfg)
    looking_up(session, be)  # before every read the decision rests on, the sender's history too
    repeat = _find_repeat(session, cfg, msg, f, opd)
    if repeat is not None:
        return repeat
    assert msg.received_at is not None
    now, window = msg.received_at.timestamp(), window_days(cfg, decision.opd) * 86400
    scored: list[tuple[float, int, dict]] = []
    names = lookup_buckets(cfg, f, opd)
    for doc_id, doc in {**be.candidates(names), **pending_candidates(session, names)}.items():
        # Either side of the window: two workers may take a later report before an earlier one.
        if doc_id == msg.id or doc.get("o") != opd or abs(now - doc["at"]) > window:
            continue
        verdict = judge(f, Features.of_doc(doc), cfg)
        if verdict is not None:
            scored.append((verdict[0], doc_id, verdict[1]))
    if not scored:
        return None
    scored.sort(key=lambda s: -s[0])
    ids = [doc_id for _, doc_id, _ in scored[:20]]
    current = open_case_tickets(session, set(ids))
    for score, doc_id, reasons in scored[:20]:
        tid, status, code = current.get(doc_id, (None, None, None))
        if tid is None or status not in OPEN or (code is not None and code != opd):
            continue
        _remember(session, cfg, msg, f, opd)
        return Match(ticket_id=tid, kind="case", score=score, reasons={**reasons, "matched_message": doc_id})
    return None


def open_case_tickets(session: Session, message_ids: set[int]) -> dict[int, tuple[int, str, str | None]]:
    """message id -> (ticket id, status, OPD) for the messages whose ticket is open. Two primary-key
    lookups: a join filtered on the ticket's status lets SQLite scan every open ticket."""
    if not message_ids:
        return {}
    owner = dict(session.exec(select(Message.id, Message.ticket_id).where(  # type: ignore[call-overload]
        one_of(session, Message.id, message_ids), Message.ticket_id.is_not(None))).all())  # type: ignore[union-attr]
    tickets = {tid: (status, code) for tid, status, code in session.exec(
        select(Ticket.id, Ticket.status, Ticket.opd_code).where(one_of(session, Ticket.id, set(owner.values())),
                                                                Ticket.status.in_(OPEN))).all()}
    return {mid: (tid, *tickets[tid]) for mid, tid in owner.items() if tid in tickets}


def _find_repeat(session: Session, cfg: AppConfig, msg: Message, f: Features, opd: str) -> Match | None:
    span = timedelta(hours=cfg.dedup.repeat_window_hours)
    rows = session.exec(
        select(Message, Ticket.opd_code).join(Ticket, Ticket.id == Message.ticket_id)
        .where(Message.contact_id == msg.contact_id, Message.direction == "in", Message.id != msg.id,
               Message.received_at >= msg.received_at - span, Message.received_at <= msg.received_at + span,
               Ticket.status.in_(OPEN))
    ).all()
    hit = best_repeat(cfg, f, opd, ((o.id, features_of(o, None), o.ticket_id, code) for o, code in rows))
    if hit is None:
        return None
    score, other_id, reasons, ticket_id = hit
    return Match(ticket_id=ticket_id, kind="repeat", score=score, reasons={**reasons, "matched_message": other_id})


def best_repeat(cfg: AppConfig, f: Features, opd: str,
                earlier: Iterable[tuple[int, Features, Any, str | None]]) -> tuple[float, int, dict, Any] | None:
    """Which of the sender's own earlier reports (message id, features, ticket, its OPD) this one
    repeats: (score, message id, reasons, ticket) of the best, or None."""
    best: tuple[float, int, dict, Any] | None = None
    for other_id, of, ticket, code in earlier:
        if code is not None and code != opd and jaccard(f.words, of.words) < 0.8:
            continue  # never across OPDs, unless it is the same text
        verdict = judge(f, of, cfg, same_sender=True)
        if verdict is not None and (best is None or verdict[0] > best[0]):
            best = (verdict[0], other_id, verdict[1], ticket)
    return best


def _remember(session: Session, cfg: AppConfig, msg: Message, f: Features, opd: str) -> None:
    """Queue `msg` for the index; it is written once the transaction commits."""
    if opd == "-" or msg.id is None:
        return
    doc, buckets = _doc(cfg, msg, f, opd)
    stash(session)["add"].append((backend(session, cfg), msg.id, doc, buckets))


def index(session: Session, cfg: AppConfig, ticket: Ticket, msg: Message) -> None:
    """Remember a new case so later reports of the same problem find it (after commit)."""
    cached = session.info.pop("aduan_dedup_features", None)
    f = cached[1] if cached and cached[0] == msg.id else features_of(msg, None)
    if ticket.id is not None:
        opened(session, [ticket.id])
    # Triage tickets ("-") are not offered as cases until an operator routes them.
    _remember(session, cfg, msg, f, ticket.opd_code or "-")


def has_reported(session: Session, ticket_id: int | None, contact_id: int | None, exclude_id: int | None) -> bool:
    """Whether this contact already has a message in this ticket (one join notice per reporter)."""
    row = session.exec(select(Message.id).where(Message.ticket_id == ticket_id, Message.contact_id == contact_id,
                                                Message.direction == "in", Message.id != exclude_id)).first()
    return row is not None


from core.dedup_ops import examples, merge, split, unmerge  # noqa: E402,F401  (operators' decisions)
