"""What people do to tickets in the console, each one audited with before/after data.

Functions here take an open session and do not commit: the route commits, then enqueues the
replies it created (core.replies.take_pending), so a reply is never sent for a change that
was rolled back. Merge and split use `core.dedup.merge` / `core.dedup.split` when the dedup
engine provides them, else the minimal versions below.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlmodel import Session, col, select

from core.config import AppConfig
from core.console.models import Label, User
from core.models import Event, Message, Ticket, utcnow
from core.pipeline import opd_name, ticket_number
from core.replies import PENDING_KEY, queue_reply

TRANSITIONS = {
    "new": ("routed", "rejected"),
    "routed": ("responded", "resolved", "rejected"),
    "responded": ("resolved", "rejected"),
    "resolved": ("closed", "routed"),
    "rejected": ("routed",),
    "closed": (),
}
MENTION_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{2,31}")  # a username (core.auth.USERNAME)
_MENTION = re.compile(r"@(" + MENTION_NAME.pattern + ")")
_TRACKED = ("status", "opd_code", "triage", "routed_at", "responded_at", "resolved_at", "closed_at",
            "rejected_at", "reject_reason", "feedback_at")


class ActionError(ValueError):
    """A refusal to show the person (in Indonesian): the action is not possible as asked."""


def snapshot(t: Ticket) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k in _TRACKED if (v := getattr(t, k)) is not None}


def audit(session: Session, actor: str, action: str, ticket: Ticket | None, before: dict | None = None,
          after: dict | None = None, message_id: int | None = None, **extra: Any) -> None:
    data = {"before": before, "after": after, **extra} if before is not None or after is not None else dict(extra)
    session.add(Event(at=utcnow(), actor=actor, action=action, ticket_id=ticket.id if ticket else None,
                      message_id=message_id, data=data))


def _first_text(session: Session, ticket: Ticket) -> str:
    first = session.exec(select(Message.text).where(Message.ticket_id == ticket.id, Message.direction == "in")
                         .order_by(col(Message.received_at), col(Message.id))).first()
    return first or ticket.subject or ""


def _label(session: Session, ticket: Ticket, opd: str | None, source: str, actor: str, reason: str | None,
           text: str | None = None) -> None:
    session.add(Label(text=text if text is not None else _first_text(session, ticket), opd=opd, source=source,
                      reason=reason, ticket_id=ticket.id, actor=actor, created_at=utcnow()))


def reply(session: Session, cfg: AppConfig, ticket: Ticket, user: User, text: str, everyone: bool = False) -> list[Message]:
    """Answer the citizen (or every reporter of a merged case) on their own channel."""
    text = text.strip()
    if not text:
        raise ActionError("Balasan kosong.")
    if len(text) > 4000:
        raise ActionError("Balasan terlalu panjang (maksimal 4000 karakter).")
    inbound = session.exec(select(Message).where(Message.ticket_id == ticket.id, Message.direction == "in")
                           .order_by(col(Message.received_at).desc(), col(Message.id).desc())).all()
    targets: dict[int | None, Message] = {}
    for m in inbound:
        if m.contact_id not in targets and (everyone or m.contact_id == ticket.contact_id or not targets):
            targets[m.contact_id] = m
    if not targets:
        raise ActionError("Laporan ini tidak punya pesan warga untuk dibalas.")
    if not everyone:
        primary = targets.get(ticket.contact_id) or next(iter(targets.values()))
        targets = {primary.contact_id: primary}
    before = snapshot(ticket)
    now = utcnow()
    created = []
    for m in targets.values():
        out = queue_reply(session, cfg, m, "operator_reply", key=f"reply:{uuid.uuid4()}", author=user.username,
                          text=text)
        if out is not None:
            created.append(out)
    ticket.feedback_at = ticket.feedback_at or now
    if user.role == "opd" and ticket.status == "routed":
        ticket.status, ticket.responded_at = "responded", now
    ticket.updated_at = now
    audit(session, user.username, "ticket.reply", ticket, before, snapshot(ticket),
          messages=[o.id for o in created], text=text[:500])
    return created


def resend(session: Session, ticket: Ticket, message_id: int, user: User) -> Message:
    """'Send again' for a reply whose delivery failed or is unconfirmed (a worker stopped mid-send:
    the operator checked with the citizen or the provider and decides to send it once more)."""
    out = session.get(Message, message_id)
    if out is None or out.ticket_id != ticket.id or out.direction != "out":
        raise ActionError("Balasan tidak ada di laporan ini.")
    if out.delivery_state not in ("failed", "unconfirmed"):
        raise ActionError("Hanya balasan yang gagal atau belum pasti yang bisa dikirim ulang.")
    before = {"delivery_state": out.delivery_state, "error": out.error}
    out.delivery_state, out.error = "pending", None
    session.add(out)
    session.info.setdefault(PENDING_KEY, []).append(out.id)
    audit(session, user.username, "message.resend", ticket, before, {"delivery_state": "pending"}, message_id=out.id)
    return out


def change_status(session: Session, cfg: AppConfig, ticket: Ticket, user: User, status: str,
                  reason: str = "", message: str = "") -> list[Message]:
    """Move along the lifecycle; rejecting needs a reason, and the citizen is told."""
    if status not in TRANSITIONS.get(ticket.status, ()):
        raise ActionError(f"Status {ticket.status} tidak bisa diubah menjadi {status}.")
    if status == "rejected" and not reason.strip():
        raise ActionError("Alasan penolakan wajib diisi.")
    if status == "routed" and not ticket.opd_code:
        raise ActionError("Tentukan OPD dulu (alihkan ke OPD).")
    before, now = snapshot(ticket), utcnow()
    ticket.status, ticket.updated_at = status, now
    stamp = {"routed": "routed_at", "responded": "responded_at", "resolved": "resolved_at",
             "closed": "closed_at", "rejected": "rejected_at"}[status]
    if status == "routed" or getattr(ticket, stamp) is None:
        setattr(ticket, stamp, now)
    if status == "rejected":
        ticket.reject_reason = reason.strip()[:500]
    created: list[Message] = []
    template = {"rejected": "rejected", "resolved": "resolved"}.get(status)
    last_in = session.exec(select(Message).where(Message.ticket_id == ticket.id, Message.direction == "in",
                                                 Message.contact_id == ticket.contact_id)
                           .order_by(col(Message.id).desc())).first()
    if template and last_in is not None:
        out = queue_reply(session, cfg, last_in, template, key=f"{template}:{ticket.id}:{uuid.uuid4().hex[:8]}",
                          author=user.username, ticket=ticket.number, opd=opd_name(cfg, ticket.opd_code),
                          reason=reason.strip(), response=message.strip())
        if out is not None:
            created.append(out)
            ticket.feedback_at = ticket.feedback_at or now
    audit(session, user.username, "ticket.status", ticket, before, snapshot(ticket), reason=reason or None)
    return created


def reroute(session: Session, cfg: AppConfig, ticket: Ticket, user: User, opd: str, reason: str) -> list[Message]:
    """Send the ticket to another OPD; the correction becomes a training label for the classifier."""
    target = cfg.opd(opd)
    if target is None:
        raise ActionError(f"OPD {opd!r} tidak dikenal.")
    if not target.active:
        raise ActionError(f"OPD {opd} sudah dinonaktifkan; pilih OPD lain.")
    if not reason.strip():
        raise ActionError("Alasan pengalihan wajib diisi.")
    if opd == ticket.opd_code and not ticket.triage:
        raise ActionError("Laporan sudah di OPD tersebut.")
    if ticket.status in ("closed", "rejected"):
        raise ActionError("Laporan yang sudah ditutup atau ditolak tidak bisa dialihkan.")
    before, now = snapshot(ticket), utcnow()
    ticket.opd_code, ticket.triage, ticket.routed_at, ticket.updated_at = opd, False, now, now
    ticket.responded_at = None  # the new OPD's response clock starts now
    if ticket.status in ("new", "responded"):
        ticket.status = "routed"
    _label(session, ticket, opd, "rerouted", user.username, reason.strip())
    created = []
    last_in = session.exec(select(Message).where(Message.ticket_id == ticket.id, Message.direction == "in",
                                                 Message.contact_id == ticket.contact_id)
                           .order_by(col(Message.id).desc())).first()
    if last_in is not None:
        out = queue_reply(session, cfg, last_in, "routed", key=f"routed:{ticket.id}:{opd}",
                          ticket=ticket.number, opd=opd_name(cfg, opd))
        if out is not None:
            created.append(out)
    audit(session, user.username, "ticket.reroute", ticket, before, snapshot(ticket), reason=reason.strip())
    return created


def confirm(session: Session, ticket: Ticket, user: User) -> None:
    """The classifier got it right: say so (a 'confirmed' label) and leave triage."""
    if not ticket.opd_code:
        raise ActionError("Laporan belum punya OPD untuk dikonfirmasi.")
    before = snapshot(ticket)
    ticket.triage, ticket.updated_at = False, utcnow()
    if ticket.status == "new":
        ticket.status, ticket.routed_at = "routed", utcnow()
    _label(session, ticket, ticket.opd_code, "confirmed", user.username, None)
    audit(session, user.username, "ticket.confirm", ticket, before, snapshot(ticket))


def mark_spam(session: Session, ticket: Ticket, user: User) -> None:
    """Not a complaint: rejected without a message to the sender, and a 'no OPD' label."""
    if ticket.status in ("closed", "rejected"):
        raise ActionError("Laporan sudah ditutup atau ditolak.")
    before, now = snapshot(ticket), utcnow()
    ticket.status, ticket.rejected_at, ticket.reject_reason, ticket.updated_at = "rejected", now, "spam", now
    ticket.triage = False
    _label(session, ticket, None, "confirmed", user.username, "spam")
    audit(session, user.username, "ticket.spam", ticket, before, snapshot(ticket))


def block_sender(session: Session, ticket: Ticket, user: User, reason: str) -> None:
    """Block the ticket's reporter: their later messages are stored but open nothing and get no reply."""
    from core.models import Contact

    if not reason.strip():
        raise ActionError("Tuliskan alasan pemblokiran.")
    contact = session.get(Contact, ticket.contact_id) if ticket.contact_id else None
    if contact is None:
        raise ActionError("Pelapor tidak ditemukan.")
    before = {"contact": contact.id, "blocked": contact.blocked}
    contact.blocked = True
    audit(session, user.username, "contact.block", ticket, before, {"contact": contact.id, "blocked": True,
                                                                     "reason": reason.strip()})


def note(session: Session, cfg: AppConfig, ticket: Ticket, user: User, text: str) -> list[str]:
    """An internal note (never sent to the citizen). @username mentions of people who may see the ticket
    notify them (core.console.mentions); the others are recorded as not delivered. Returns those names."""
    from core.console import mentions

    text = text.strip()
    if not text:
        raise ActionError("Catatan kosong.")
    names = sorted(set(_MENTION.findall(text.lower())))
    told, refused = mentions.split_by_access(session, ticket, names, user.username)
    ev = Event(at=utcnow(), actor=user.username, action="note", ticket_id=ticket.id,
               # "mentions" last: the inbox's "mentioned me" filter matches from that key on (core.console.inbox)
               data={"text": text[:4000], "not_delivered": refused, "mentions": [u.username for u in told]})
    session.add(ev)
    session.flush()
    mentions.notify(session, cfg, ticket, ev, told, user.username)
    return refused


# ---------------------------------------------------------------- merge and split


def merge(session: Session, cfg: AppConfig, source: Ticket, target: Ticket, user: User, reason: str) -> Ticket:
    """Fold `source` into `target`: its messages and reporters join the target, source is closed."""
    if source.id == target.id:
        raise ActionError("Tidak bisa menggabungkan laporan dengan dirinya sendiri.")
    if target.status in ("closed", "rejected"):
        raise ActionError("Laporan tujuan sudah ditutup atau ditolak.")
    from core import dedup

    engine_merge = getattr(dedup, "merge", None)
    before_s, before_t = snapshot(source), snapshot(target)
    if engine_merge is not None:
        try:
            engine_merge(session, source.id, target.id, user.username, reason)
        except ValueError as exc:  # core.dedup_ops.DedupError: phrased for the operator
            raise ActionError(str(exc)) from None
        session.refresh(source)
        session.refresh(target)
    else:
        _merge(session, source, target)
    _label(session, source, target.opd_code, "merge", user.username, reason or f"merged into {target.number}")
    audit(session, user.username, "ticket.merge", source, before_s, snapshot(source), into=target.number,
          reason=reason or None)
    audit(session, user.username, "ticket.merged_in", target, before_t, snapshot(target), source=source.number)
    return target


def _merge(session: Session, source: Ticket, target: Ticket) -> None:
    now = utcnow()
    for m in session.exec(select(Message).where(Message.ticket_id == source.id)).all():
        m.ticket_id = target.id
        m.dedup = {**(m.dedup or {}), "merged_from": source.number}
    session.flush()
    contacts = set(session.exec(select(Message.contact_id).where(Message.ticket_id == target.id,
                                                                 Message.direction == "in")).all())
    target.reporters = max(1, len(contacts))
    target.updated_at = now
    source.status, source.closed_at, source.updated_at = "closed", now, now
    source.reject_reason = f"digabung ke {target.number}"


def unmerge(session: Session, ticket: Ticket, event_id: int, user: User, reason: str) -> Ticket:
    """Undo an operator's or the engine's merge into `ticket` (core.dedup.unmerge); returns the source."""
    from core import dedup

    ev = session.get(Event, event_id)
    engine_unmerge = getattr(dedup, "unmerge", None)
    if engine_unmerge is None or ev is None or ev.action != "dedup.merge" or ev.ticket_id != ticket.id:
        raise ActionError("Catatan penggabungan tidak ditemukan di laporan ini.")
    undone = session.exec(select(Event).where(Event.action == "dedup.unmerge", Event.ticket_id == ticket.id)).all()
    if any((e.data or {}).get("undoes") == event_id for e in undone):
        raise ActionError("Penggabungan ini sudah dibatalkan.")
    before = snapshot(ticket)
    try:
        engine_unmerge(session, event_id, user.username, reason)
    except ValueError as exc:
        raise ActionError(str(exc)) from None
    source = session.get(Ticket, (ev.data or {}).get("source"))
    assert source is not None
    session.refresh(ticket)
    audit(session, user.username, "ticket.unmerge", ticket, before, snapshot(ticket), source=source.number,
          reason=reason or None)
    return source


def split(session: Session, cfg: AppConfig, message: Message, user: User, reason: str) -> Ticket:
    """Take one citizen message out of its ticket into a new ticket of its own (same OPD to start)."""
    old = session.get(Ticket, message.ticket_id) if message.ticket_id else None
    if old is None or message.direction != "in":
        raise ActionError("Hanya pesan warga dalam sebuah laporan yang bisa dipisahkan.")
    others = session.exec(select(Message.id).where(Message.ticket_id == old.id, Message.direction == "in",
                                                   Message.id != message.id)).first()
    if others is None:
        raise ActionError("Pesan ini satu-satunya di laporan; tidak ada yang perlu dipisahkan.")
    from core import dedup

    engine_split = getattr(dedup, "split", None)
    if engine_split is not None:
        try:
            result = engine_split(session, message.id, user.username, reason)
        except ValueError as exc:
            raise ActionError(str(exc)) from None
        new_id = getattr(result, "id", result)
        new = session.get(Ticket, new_id)
        assert new is not None
    else:
        new = _split(session, cfg, message, old)
    _label(session, new, new.opd_code, "split", user.username, reason or None, text=message.text or "")
    audit(session, user.username, "ticket.split", old, None, None, message_id=message.id, new=new.number,
          reason=reason or None)
    audit(session, user.username, "ticket.split_from", new, None, snapshot(new), source=old.number)
    return new


def _split(session: Session, cfg: AppConfig, message: Message, old: Ticket) -> Ticket:
    now = utcnow()
    new = Ticket(channel=message.channel, contact_id=message.contact_id, subject=(message.text or "")[:200],
                 opd_code=old.opd_code, status="routed" if old.opd_code else "new", triage=old.opd_code is None,
                 kecamatan=old.kecamatan, kelurahan=old.kelurahan, street=old.street, created_at=message.received_at or now,
                 routed_at=now if old.opd_code else None, updated_at=now)
    session.add(new)
    session.flush()
    new.number = ticket_number(cfg, new.id, new.created_at)
    message.ticket_id = new.id
    message.dedup = {**(message.dedup or {}), "split_from": old.number}
    session.flush()
    contacts = set(session.exec(select(Message.contact_id).where(Message.ticket_id == old.id,
                                                                 Message.direction == "in")).all())
    old.reporters, old.updated_at = max(1, len(contacts)), now
    return new
