"""Personal data under UU 27/2022 (PDP): retention, and data-subject export and erasure.

A Media Center keeps complaints for statistics long after it needs to know who wrote them.
`anonymise_expired` replaces citizens' identities with a stable pseudonym once every ticket
they are linked to has been finished (resolved, closed or rejected) for `privacy.anonymise_after_months`
months; an open case is never touched. `erase` does the same at once, on the person's request,
and stops further replies to them. What stays: the complaint text with phone numbers, NIK,
e-mail addresses and the person's names redacted, the OPD, the kelurahan/kecamatan, the times
and the ticket itself, so counts per OPD and per kelurahan do not change.

The pseudonym is ``anon-`` + HMAC-SHA256 of ``channel:address`` keyed with $ADUAN_PSEUDONYM_KEY
(stable, so statistics on repeat reporters still work, but not reversible without the key);
without the key a random per-run key is used, which still anonymises but links nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
import sqlalchemy as sa
from sqlalchemy import or_
from sqlmodel import Session, select

from core.civic_models import Proposal, ProposalDraft
from core.config import AppConfig
from core.console.models import Label
from core.logs import redact
from core.models import Citizen, Contact, Event, Message, Ticket, utcnow

log = logging.getLogger(__name__)

ANON_PREFIX = "anon-"
FINISHED = ("resolved", "closed", "rejected")
ERASED_REASON = "erased on request"
RETAINED_REASON = "anonymised after the retention period"
NAME_MARK = "[nama]"
# Phone numbers written with spaces, dots or dashes ("0812-3456-7890"), which core.logs.redact misses.
_SPACED_PHONE = re.compile(r"(?<![\w+])(?:\+?62|0)[\s.-]*8(?:[\s.-]*\d){7,12}(?!\d)")
_RUN_KEY = secrets.token_bytes(32)
_WARNED = False


class NotFound(Exception):
    """Nobody matches the given address; the message says what to try instead."""


@dataclass
class Counts:
    contacts: int = 0
    messages: int = 0
    tickets: int = 0
    proposals: int = 0
    contact_ids: list[int] = field(default_factory=list)

    def public(self) -> dict[str, int]:
        """Only numbers: an audit event must not itself hold personal data."""
        return {"contacts": self.contacts, "messages": self.messages, "tickets": self.tickets,
                "proposals": self.proposals}


# ---------------------------------------------------------------- pseudonyms and scrubbing


def pseudonym(channel: str, address: str) -> str:
    global _WARNED
    key = os.environ.get("ADUAN_PSEUDONYM_KEY", "").encode() or _RUN_KEY
    if key is _RUN_KEY and not _WARNED:
        _WARNED = True
        log.warning("ADUAN_PSEUDONYM_KEY is not set: pseudonyms use a random key and cannot be linked later")
    return ANON_PREFIX + hmac.new(key, f"{channel}:{address}".encode(), hashlib.sha256).hexdigest()[:24]


def redact_text(text: str) -> str:
    """core.logs.redact plus phone numbers written with separators."""
    return _SPACED_PHONE.sub("[telepon]", redact(text))


def phone_variants(address: str) -> list[str]:
    """The ways a citizen writes their own E.164 number: +62812…, 62812…, 0812…, 812…."""
    if not re.fullmatch(r"\+\d{8,15}", address):
        return []
    try:
        num = phonenumbers.parse(address, None)
    except phonenumbers.NumberParseException:
        return []
    national = str(num.national_number)
    return [address, address[1:], "0" + national, national]


def _needles(contact: Contact, extra_names: set[str]) -> list[tuple[str, str]]:
    """(text to find, replacement), longest first so 0812… is replaced before 812…. Names are also
    split into words (a citizen signs "Budi" as often as "Budi Santoso")."""
    pseudo = contact.address if contact.address.startswith(ANON_PREFIX) else pseudonym(contact.channel, contact.address)
    pairs = {v: pseudo for v in [contact.address, *phone_variants(contact.address)]}
    for name in {contact.display_name, *extra_names} - {None, ""}:
        for variant in {name, name.lstrip("@"), *re.findall(r"\w{4,}", name)}:
            if len(variant) >= 3 and variant not in pairs:
                pairs[variant] = NAME_MARK
    return sorted(pairs.items(), key=lambda p: -len(p[0]))


def _replace(text: str, needle: str, repl: str) -> str:
    """Whole words only (0812… not inside a longer number, "Budi" not inside "Budiman"); names in any case."""
    flags = re.IGNORECASE if repl == NAME_MARK else 0
    return re.sub(rf"(?<!\w){re.escape(needle)}(?!\w)", lambda _: repl, text, flags=flags)


def scrub(value: Any, needles: list[tuple[str, str]], pii: bool = True, names: bool = True) -> Any:
    """Walk strings, lists and dicts; redact PII patterns (when `pii`) and the person's identifiers
    (`names`=False for provider ids: only the address is replaced there, by the pseudonym)."""
    if isinstance(value, str):
        out = redact_text(value) if pii else value
        for needle, repl in needles:
            if names or repl != NAME_MARK:
                out = _replace(out, needle, repl)
        return out
    if isinstance(value, list):
        return [scrub(v, needles, pii, names) for v in value]
    if isinstance(value, dict):
        return {k: scrub(v, needles, pii, names) for k, v in value.items()}
    return value


def _strip_attachments(session: Session, m: Message) -> list[dict[str, Any]]:
    """Keep kind, type and size. A stored photo stays while its ticket is open (the OPD works from it);
    otherwise the file is deleted unless another message holds the same photo."""
    ticket = session.get(Ticket, m.ticket_id) if m.ticket_id else None
    still_needed = ticket is not None and ticket.status not in FINISHED
    kept = []
    for a in m.attachments or []:
        if not isinstance(a, dict):
            continue
        slim = {k: a.get(k) for k in ("kind", "mime_type", "size") if k in a} | {"removed": True}
        ev = a.get("evidence") if isinstance(a.get("evidence"), dict) else None
        if ev and still_needed:
            slim["evidence"] = {k: ev[k] for k in ("path", "sha256", "bytes", "mime") if k in ev}
        elif ev and ev.get("path") and ev.get("sha256"):
            _delete_unshared(session, m.id, str(ev["path"]), str(ev["sha256"]))
        kept.append(slim)
    return kept


def _delete_unshared(session: Session, message_id: int | None, rel: str, sha: str) -> None:
    from core.config import data_dir

    others = select(Message.id).where(Message.id != message_id,
                                      sa.cast(Message.attachments, sa.Text).like(f"%{sha}%"))
    path = (data_dir() / rel).resolve()
    if session.exec(others).first() is None and path.parent == (data_dir() / "media").resolve():
        path.unlink(missing_ok=True)


def _coarse(value: float | None, places: int = 3) -> float | None:
    """~100 m: enough for a kelurahan map, not enough to find a house."""
    return None if value is None else round(value, places)


# ---------------------------------------------------------------- anonymising one person


def anonymise_contact(session: Session, contact: Contact, counts: Counts) -> None:
    """Replace one channel identity, everywhere it is stored, by its pseudonym. Idempotent."""
    if contact.address.startswith(ANON_PREFIX):
        return
    own = list(session.exec(select(Message).where(Message.contact_id == contact.id)).all())
    names = {m.sender_display for m in own if m.sender_display}
    citizen = session.get(Citizen, contact.citizen_id) if contact.citizen_id else None
    if citizen is not None and citizen.display_name:
        names.add(citizen.display_name)
    needles = _needles(contact, names)
    ticket_ids = {m.ticket_id for m in own if m.ticket_id}
    ticket_ids |= set(session.exec(select(Ticket.id).where(Ticket.contact_id == contact.id)).all())
    own_ids = {m.id for m in own}
    for m in own:
        m.text = scrub(m.text, needles)
        m.sender_display = None
        m.raw = None
        m.attachments = _strip_attachments(session, m)
        if m.location:
            m.location = {"lat": _coarse(m.location.get("lat")), "lon": _coarse(m.location.get("lon"))}
        m.external_id = scrub(m.external_id, needles, pii=False, names=False)
        m.in_reply_to = scrub(m.in_reply_to, needles, pii=False, names=False)
        m.provider_id = scrub(m.provider_id, needles, pii=False, names=False)
        m.error = scrub(m.error, needles)
        m.dedup = scrub(m.dedup, needles)
    if ticket_ids:  # other people's messages on the same tickets (replies quoting the reporter)
        for m in session.exec(select(Message).where(Message.ticket_id.in_(ticket_ids))).all():  # type: ignore[union-attr]
            if m.id not in own_ids:
                m.text = scrub(m.text, needles, pii=False)
        for t in session.exec(select(Ticket).where(Ticket.id.in_(ticket_ids))).all():  # type: ignore[union-attr]
            t.subject = scrub(t.subject, needles)
            t.street, t.landmark = scrub(t.street, needles), scrub(t.landmark, needles)
            t.lat, t.lon = _coarse(t.lat), _coarse(t.lon)
            t.reject_reason = scrub(t.reject_reason, needles)
        for lb in session.exec(select(Label).where(Label.ticket_id.in_(ticket_ids))).all():  # type: ignore[union-attr]
            lb.text = scrub(lb.text, needles)
    conds = [Event.message_id.in_(own_ids)] if own_ids else []  # type: ignore[union-attr]
    if ticket_ids:
        conds.append(Event.ticket_id.in_(ticket_ids))  # type: ignore[union-attr]
    if conds:
        for ev in session.exec(select(Event).where(or_(*conds))).all():
            ev.data = scrub(ev.data, needles)
    for p in session.exec(select(Proposal).where(Proposal.contact_id == contact.id)).all():
        p.proposer_name = p.proposer_phone = None
        p.title, p.description = scrub(p.title, needles), scrub(p.description, needles)
        p.lat, p.lon = _coarse(p.lat), _coarse(p.lon)
        p.photo = None
        counts.proposals += 1
    draft = session.get(ProposalDraft, contact.id)
    if draft is not None:
        session.delete(draft)
    for m in own:  # nothing more can reach an address that no longer exists
        if m.direction == "out" and m.delivery_state in ("pending", "retry"):
            m.delivery_state, m.error = "suppressed", contact.opted_out_reason or RETAINED_REASON
    contact.address = next(r for n, r in needles if n == contact.address)
    contact.display_name = None
    if not contact.opted_out:
        contact.opted_out, contact.opted_out_reason = True, RETAINED_REASON
    session.flush()
    if citizen is not None:
        others = session.exec(select(Contact).where(Contact.citizen_id == citizen.id)).all()
        citizen.display_name = None
        if all(c.address.startswith(ANON_PREFIX) for c in others):
            citizen.anonymised_at = utcnow()
    counts.contacts += 1
    counts.messages += len(own)
    counts.tickets += len(ticket_ids)
    counts.contact_ids.append(contact.id)  # type: ignore[arg-type]


# ---------------------------------------------------------------- retention


def _months_ago(now: datetime, months: int) -> datetime:
    return now - timedelta(days=round(months * 30.437))


def expired_contacts(session: Session, cutoff: datetime) -> list[Contact]:
    """Identities whose last message and every linked ticket's activity are older than `cutoff`,
    and who have no unfinished ticket."""
    recent_or_open = select(Ticket.id).where(or_(
        Ticket.status.not_in(FINISHED),  # type: ignore[attr-defined]
        Ticket.created_at >= cutoff, Ticket.updated_at >= cutoff, Ticket.resolved_at >= cutoff,
        Ticket.closed_at >= cutoff, Ticket.rejected_at >= cutoff,
    ))
    busy_by_ticket = select(Ticket.contact_id).where(Ticket.id.in_(recent_or_open), Ticket.contact_id.is_not(None))  # type: ignore[union-attr]
    busy_by_message = select(Message.contact_id).where(Message.contact_id.is_not(None), or_(  # type: ignore[union-attr]
        Message.ticket_id.in_(recent_or_open), Message.received_at >= cutoff, Message.created_at >= cutoff))  # type: ignore[union-attr]
    stmt = select(Contact).where(
        Contact.address.not_like(f"{ANON_PREFIX}%"),  # type: ignore[attr-defined]
        or_(Contact.last_inbound_at.is_(None), Contact.last_inbound_at < cutoff),  # type: ignore[union-attr]
        Contact.id.not_in(busy_by_ticket), Contact.id.not_in(busy_by_message),  # type: ignore[union-attr]
    ).order_by(Contact.id)
    return list(session.exec(stmt).all())


def _notify_addresses(cfg: AppConfig) -> set[tuple[str, str]]:
    targets = [t for o in cfg.opds for t in (o.officers, o.head)] + [cfg.sla.supervisor]
    return {(t.channel, t.address) for t in targets if t is not None}


def anonymise_expired(session: Session, cfg: AppConfig, now: datetime | None = None, dry_run: bool = False,
                      actor: str = "system", batch: int = 200) -> Counts:
    """The nightly retention run. It commits every `batch` identities (one audit event each, counts only),
    so SQLite writers are never held up for long; running it twice changes nothing the second time."""
    now = now or utcnow()
    cutoff = _months_ago(now, cfg.privacy.anonymise_after_months)
    staff = _notify_addresses(cfg)
    total, part = Counts(), Counts()
    due = [c for c in expired_contacts(session, cutoff) if (c.channel, c.address) not in staff]  # not OPD groups
    if dry_run:
        total.contacts = len(due)
        return total
    for i, contact in enumerate(due, 1):
        anonymise_contact(session, contact, part)
        if i % batch == 0 or i == len(due):
            session.add(Event(at=utcnow(), actor=actor[:64], action="privacy.anonymised",
                              data={**part.public(), "after_months": cfg.privacy.anonymise_after_months,
                                    "cutoff": cutoff.isoformat()}))
            session.commit()
            for k, v in part.public().items():
                setattr(total, k, getattr(total, k) + v)
            total.contact_ids += part.contact_ids
            part = Counts()
    return total


# ---------------------------------------------------------------- data-subject requests


def _candidates(query: str) -> tuple[str | None, set[str]]:
    """(channel or None, addresses to look up): 0812… also finds +62812…, @name finds name."""
    q = query.strip()
    channel = None
    m = re.fullmatch(r"([a-z0-9_]+):(.+)", q)
    if m and not q.lower().startswith("whatsapp:+"):
        channel, q = m.group(1), m.group(2).strip()
    if q.lower().startswith("whatsapp:"):
        channel, q = "whatsapp", q.split(":", 1)[1].strip()
    found = {q, q.lstrip("@")}
    if re.fullmatch(r"[\d\s()+.-]{6,}", q):
        try:
            num = phonenumbers.parse(q, "ID")
            if phonenumbers.is_valid_number(num):
                found.add(phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164))
        except phonenumbers.NumberParseException:
            pass
    return channel, {f for f in found if f}


def find_person(session: Session, query: str) -> list[Contact]:
    """Every contact of the person: those matching the address, plus all linked to the same Citizen."""
    channel, addresses = _candidates(query)
    stmt = select(Contact).where(Contact.address.in_(addresses))  # type: ignore[attr-defined]
    if channel:
        stmt = stmt.where(Contact.channel == channel)
    direct = list(session.exec(stmt).all())
    if not direct:
        tried = ", ".join(sorted(addresses))
        raise NotFound(f"nobody with the address {query!r} (looked for {tried}). Give the phone number as the "
                       f"citizen wrote it (0812…, +62812…), or CHANNEL:ADDRESS as shown in the console "
                       f"(e.g. telegram:123456789, twitter:@name); an identity already anonymised cannot be found.")
    citizens = {c.citizen_id for c in direct if c.citizen_id}
    linked = session.exec(select(Contact).where(Contact.citizen_id.in_(citizens))).all() if citizens else []  # type: ignore[union-attr]
    by_id = {c.id: c for c in [*direct, *linked]}
    return [by_id[k] for k in sorted(by_id)]  # type: ignore[type-var]


def _wib(cfg: AppConfig, when: datetime | None) -> str | None:
    return when.astimezone(ZoneInfo(cfg.hub.timezone)).strftime("%Y-%m-%d %H:%M:%S WIB") if when else None


def export_person(session: Session, cfg: AppConfig, query: str) -> dict[str, Any]:
    """Every stored record about the person, as one JSON-ready document (times in WIB)."""
    contacts = find_person(session, query)
    ids = [c.id for c in contacts]
    messages = session.exec(select(Message).where(Message.contact_id.in_(ids)).order_by(Message.id)).all()  # type: ignore[union-attr]
    ticket_ids = {m.ticket_id for m in messages if m.ticket_id}
    ticket_ids |= set(session.exec(select(Ticket.id).where(Ticket.contact_id.in_(ids))).all())  # type: ignore[union-attr]
    tickets = session.exec(select(Ticket).where(Ticket.id.in_(ticket_ids)).order_by(Ticket.id)).all() if ticket_ids else []  # type: ignore[union-attr]
    numbers = {t.id: t.number for t in tickets}
    citizens = {c.citizen_id for c in contacts if c.citizen_id}
    proposals = session.exec(select(Proposal).where(Proposal.contact_id.in_(ids))).all()  # type: ignore[union-attr]
    w = lambda d: _wib(cfg, d)  # noqa: E731
    return {
        "generated_at": w(utcnow()), "request": query, "timezone": f"{cfg.hub.timezone} (WIB)",
        "citizens": [{"id": c.id, "display_name": c.display_name, "created_at": w(c.created_at)}
                     for c in (session.get(Citizen, i) for i in sorted(citizens)) if c],
        "contacts": [{"channel": c.channel, "address": c.address, "display_name": c.display_name,
                      "created_at": w(c.created_at), "last_inbound_at": w(c.last_inbound_at),
                      "opted_out": c.opted_out, "opted_out_reason": c.opted_out_reason, "blocked": c.blocked}
                     for c in contacts],
        "messages": [{"direction": m.direction, "channel": m.channel, "external_id": m.external_id,
                      "ticket": numbers.get(m.ticket_id), "text": m.text, "sender_display": m.sender_display,
                      "received_at": w(m.received_at), "sent_at": w(m.sent_at), "attachments": m.attachments,
                      "location": m.location, "delivery_state": m.delivery_state, "provider_payload": m.raw}
                     for m in messages],
        "tickets": [{"number": t.number, "status": t.status, "opd": t.opd_code,
                     "opd_name": (cfg.opd(t.opd_code).name if cfg.opd(t.opd_code) else None), "subject": t.subject,
                     "kelurahan": t.kelurahan, "kecamatan": t.kecamatan, "street": t.street,
                     "created_at": w(t.created_at), "routed_at": w(t.routed_at), "responded_at": w(t.responded_at),
                     "resolved_at": w(t.resolved_at), "closed_at": w(t.closed_at), "rejected_at": w(t.rejected_at)}
                    for t in tickets],
        "proposals": [{"number": p.number, "title": p.title, "description": p.description,
                       "proposer_name": p.proposer_name, "proposer_phone": p.proposer_phone, "status": p.status,
                       "kelurahan": p.kelurahan, "created_at": w(p.created_at)} for p in proposals],
    }


def erase_person(session: Session, query: str, reason: str, actor: str) -> Counts:
    """Anonymise the person now (open tickets keep working for the OPD) and stop replies to them."""
    if not reason.strip():
        raise ValueError("give the reason for the erasure (e.g. the request's reference number)")
    contacts = find_person(session, query)
    needles: list[tuple[str, str]] = []
    for c in contacts:
        needles += _needles(c, set())
    counts = Counts()
    for c in contacts:
        c.opted_out, c.opted_out_reason = True, ERASED_REASON
        anonymise_contact(session, c, counts)
    session.add(Event(at=utcnow(), actor=actor[:64], action="privacy.erased",
                      data={**counts.public(), "reason": scrub(reason.strip(), needles)[:500]}))
    return counts

