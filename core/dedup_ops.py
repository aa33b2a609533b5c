"""Operators' deduplication decisions: merge two tickets, split a report out, undo a merge.

The console calls these inside its own transaction (the caller commits). Each writes an Event
carrying what is needed to undo it and what the automatic decision had seen (the message's
`dedup` record), so the decisions double as labelled examples for tuning thresholds
(`examples`). The dedup index needs no update: lookups check each candidate's *current*
ticket in the database.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from core.models import Event, Message, Ticket, utcnow


class DedupError(ValueError):
    """An operator's request that cannot be carried out (the message says why, for the console)."""


def _reporters(session: Session, ticket_id: int) -> int:
    n = session.exec(select(func.count(func.distinct(Message.contact_id)))
                     .where(Message.ticket_id == ticket_id, Message.direction == "in")).one()
    return max(1, int(n or 0))


def merge(session: Session, source_ticket_id: int, target_ticket_id: int, actor: str, reason: str = "") -> Event:
    """Fold every message of `source` into `target`; `source` is closed. Returns the undoable event."""
    source, target = session.get(Ticket, source_ticket_id), session.get(Ticket, target_ticket_id)
    if source is None or target is None:
        raise DedupError("tiket tidak ditemukan")
    if source.id == target.id:
        raise DedupError("tiket tidak bisa digabung dengan dirinya sendiri")
    if source.opd_code and target.opd_code and source.opd_code != target.opd_code:
        raise DedupError(f"tiket {source.number} ({source.opd_code}) dan {target.number} ({target.opd_code}) "
                         "ditangani OPD berbeda; alihkan salah satunya dulu")
    msgs = session.exec(select(Message).where(Message.ticket_id == source.id)).all()
    moved = [m.id for m in msgs]
    for m in msgs:
        m.ticket_id = target.id
    now = utcnow()
    prev = {"status": source.status, "closed_at": source.closed_at.isoformat() if source.closed_at else None,
            "reporters": source.reporters, "target_reporters": target.reporters}
    source.status, source.closed_at, source.updated_at = "closed", now, now
    session.flush()
    target.reporters, target.updated_at = _reporters(session, target.id), now
    data = {"source": source.id, "source_number": source.number, "target": target.id,
            "target_number": target.number, "messages": moved, "previous": prev, "reason": reason,
            "auto": [m.dedup for m in msgs if m.dedup]}
    ev = Event(at=now, actor=actor, action="dedup.merge", ticket_id=target.id, data=data)
    session.add(ev)
    session.add(Event(at=now, actor=actor, action="ticket.merged", ticket_id=source.id, data=data))
    session.flush()
    return ev


def merged_into(session: Session, ticket: Ticket | None) -> Ticket | None:
    """The case a ticket was merged into (by an operator or a worker), following merges of merges;
    the ticket itself when it was not merged (or was unmerged since)."""
    for _ in range(10):
        if ticket is None or ticket.status != "closed":
            return ticket
        ev = session.exec(select(Event).where(Event.ticket_id == ticket.id, Event.action == "ticket.merged")
                          .order_by(col(Event.id).desc())).first()
        if ev is None or not ev.data or ev.at != ticket.closed_at:
            return ticket
        ticket = session.get(Ticket, ev.data["target"])
    return ticket


def unmerge(session: Session, event_id: int, actor: str, reason: str = "") -> Event:
    """Undo a merge: the moved messages go back and the source ticket reopens as it was."""
    ev = session.get(Event, event_id)
    if ev is None or ev.action != "dedup.merge" or not ev.data:
        raise DedupError("bukan catatan penggabungan")
    d = ev.data
    source, target = session.get(Ticket, d["source"]), session.get(Ticket, d["target"])
    if source is None or target is None:
        raise DedupError("tiket tidak ditemukan")
    for m in session.exec(select(Message).where(Message.id.in_(d["messages"]))).all():
        if m.ticket_id == target.id:
            m.ticket_id = source.id
    now = utcnow()
    source.status, source.closed_at = d["previous"]["status"], None
    source.updated_at = target.updated_at = now
    session.flush()
    source.reporters, target.reporters = _reporters(session, source.id), _reporters(session, target.id)
    out = Event(at=now, actor=actor, action="dedup.unmerge", ticket_id=target.id,
                data={"undoes": ev.id, "source": source.id, "reason": reason})
    session.add(out)
    session.flush()
    return out


def split(session: Session, message_id: int, actor: str, reason: str = "") -> Ticket:
    """Take one report (and the replies to it) out of its ticket into a new ticket of its own."""
    from core.config import get_config
    from core.pipeline import ticket_number

    msg = session.get(Message, message_id)
    if msg is None or msg.direction != "in" or msg.ticket_id is None:
        raise DedupError("pesan tidak ditemukan atau belum menjadi bagian dari tiket")
    old = session.get(Ticket, msg.ticket_id)
    assert old is not None
    others = session.exec(select(func.count()).select_from(Message).where(
        Message.ticket_id == old.id, Message.direction == "in", Message.id != msg.id)).one()
    if not others:
        raise DedupError(f"{old.number} hanya berisi laporan ini; tidak ada yang bisa dipisah")
    now = utcnow()
    received = msg.received_at or now
    new = Ticket(channel=msg.channel, contact_id=msg.contact_id, subject=(msg.text or "")[:200],
                 opd_code=old.opd_code, status="routed" if old.opd_code else "new", triage=old.triage,
                 kecamatan=old.kecamatan, kelurahan=old.kelurahan, street=old.street, landmark=old.landmark,
                 place_key=old.place_key, created_at=received, routed_at=received if old.opd_code else None,
                 updated_at=now)
    session.add(new)
    session.flush()
    new.number = ticket_number(get_config(), new.id, new.created_at)
    auto = msg.dedup
    msg.ticket_id, msg.kind = new.id, "complaint"
    msg.dedup = {"split_from": old.number, "by": actor}
    for reply in session.exec(select(Message).where(Message.reply_to_id == msg.id)).all():
        reply.ticket_id = new.id
    if old.contact_id == msg.contact_id:  # the case's first reporter left: the next one leads it
        first = session.exec(select(Message).where(Message.ticket_id == old.id, Message.direction == "in")
                             .order_by(Message.received_at)).first()
        if first is not None:
            old.contact_id = first.contact_id
    session.flush()
    old.reporters, old.updated_at = _reporters(session, old.id), now
    data = {"from": old.id, "from_number": old.number, "to": new.id, "to_number": new.number,
            "message": msg.id, "auto": auto, "reason": reason}
    session.add(Event(at=now, actor=actor, action="dedup.split", ticket_id=old.id, message_id=msg.id, data=data))
    session.add(Event(at=now, actor=actor, action="ticket.created", ticket_id=new.id, message_id=msg.id,
                      data={"split_from": old.number}))
    session.flush()
    return new


def examples(session: Session) -> list[dict[str, Any]]:
    """Labelled pairs for tuning: automatic joins (1 unless later split), operators' merges (1), splits (0)."""
    rows = session.exec(select(Event).where(Event.action.in_(
        ("dedup.case", "dedup.repeat", "dedup.split", "dedup.merge"))).order_by(Event.id)).all()
    split_msgs = {e.message_id for e in rows if e.action == "dedup.split"}
    out: list[dict[str, Any]] = []
    for e in rows:
        d = e.data or {}
        if e.action in ("dedup.case", "dedup.repeat"):
            out.append({"message": e.message_id, "label": 0 if e.message_id in split_msgs else 1,
                        "source": "auto", "seen": d})
        elif e.action == "dedup.split":
            out.append({"message": e.message_id, "label": 0, "source": e.actor, "seen": d.get("auto")})
        else:
            out.append({"messages": d.get("messages"), "label": 1, "source": e.actor, "seen": d.get("auto")})
    return out
