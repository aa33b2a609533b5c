"""e-Musrenbang: citizens propose development projects, and hear whether (and why) they were accepted.

Two ways in: a guided Telegram conversation (`handle`, called by the pipeline before complaint
handling, so "/usulan" and the answers that follow never become complaint tickets) and the public
web form (`core.musrenbang_web`). Each proposal then passes three verification steps, each taken
by a console role (`STEPS`), and ends **diterima** or **ditolak** with a mandatory reason. Every
decision is written to the proposal's history and sent to the proposer on their own channel.

The conversation state lives in the database (`ProposalDraft`, one per contact), so it survives
worker restarts and works with any number of workers; an abandoned draft expires after a day.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from connectors.twitter_text import redact
from core.civic_models import PUBLIC_FIELDS, Proposal, ProposalDraft, ProposalEvent
from core.config import AppConfig
from core.models import Event, Message, utcnow
from core.replies import queue_reply

log = logging.getLogger(__name__)

DRAFT_TTL = timedelta(hours=24)
STATUS_LABEL = {"diajukan": "diajukan, menunggu verifikasi kelurahan",
                "lolos_kelurahan": "lolos verifikasi kelurahan, menunggu verifikasi kecamatan",
                "lolos_kecamatan": "lolos verifikasi kecamatan, menunggu keputusan OPD/Bappeda",
                "diterima": "DITERIMA", "ditolak": "DITOLAK"}
FINAL = ("diterima", "ditolak")


@dataclass(frozen=True)
class Step:
    name: str  # shown in the console
    roles: tuple[str, ...]  # console roles that decide at this step
    next_status: str  # where "approve" leads


# Who decides what. Kelurahan and kecamatan checks are done by Media Center operators on behalf of
# the kelurahan/kecamatan offices; the final decision by the OPD the kecamatan step assigned (or an admin
# acting for Bappeda).
STEPS: dict[str, Step] = {
    "diajukan": Step("Verifikasi kelurahan", ("admin", "operator"), "lolos_kelurahan"),
    "lolos_kelurahan": Step("Verifikasi kecamatan", ("admin", "operator"), "lolos_kecamatan"),
    "lolos_kecamatan": Step("Keputusan OPD/Bappeda", ("admin", "opd"), "diterima"),
}


class DecisionError(ValueError):
    """A decision that is not allowed (wrong role, missing reason, final proposal); shown to the person."""


# ---------------------------------------------------------------- places


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower().removeprefix("kelurahan ").removeprefix("kel. "))


def find_kelurahan(name: str) -> tuple[str, str] | None:
    """(kelurahan, kecamatan) for a name or alias as a citizen types it, else None."""
    from core.location import gazetteer

    want = _norm(name.strip())
    if not want:
        return None
    for kec in gazetteer()["kecamatan"]:
        for kel in kec["kelurahan"]:
            if want in {_norm(n) for n in [kel["name"], *kel.get("aliases", [])]}:
                return kel["name"], kec["name"]
    return None


def kelurahan_choices() -> list[tuple[str, str]]:
    from core.location import gazetteer

    return sorted((k["name"], kec["name"]) for kec in gazetteer()["kecamatan"] for k in kec["kelurahan"])


# ---------------------------------------------------------------- the Telegram conversation


def _command(text: str) -> str:
    first = text.strip().split(maxsplit=1)[0].lower() if text.strip() else ""
    return first.split("@", 1)[0]  # "/usulan@AduanKotaBot" in groups


def handle(session: Session, cfg: AppConfig, msg: Message, notify: bool = True) -> bool:
    """Take `msg` if it belongs to a proposal conversation (returns True: not a complaint)."""
    if msg.public or msg.contact_id is None:
        return False
    cmd = _command(msg.text or "")
    draft = session.get(ProposalDraft, msg.contact_id)
    now = utcnow()
    if draft is not None and draft.updated_at and now - draft.updated_at > DRAFT_TTL:
        session.delete(draft)
        draft = None
    if draft is None and cmd != "/usulan":
        return False
    msg.kind = "proposal"

    def reply(template: str, **values: Any) -> None:
        if notify:
            queue_reply(session, cfg, msg, template, **values)

    if cmd == "/usulan":
        if draft is not None:
            session.delete(draft)
            session.flush()
        session.add(ProposalDraft(contact_id=msg.contact_id, step="title", data={}, started_at=now, updated_at=now))
        reply("usulan_start")
        return True
    assert draft is not None
    if cmd == "/batal":
        session.delete(draft)
        reply("usulan_cancelled")
        return True
    data, text = dict(draft.data or {}), (msg.text or "").strip()
    problem, next_step = _answer(cfg, draft.step, msg, text, data)
    draft.updated_at = now
    if problem:
        reply("usulan_retry", problem=problem)
        return True
    draft.data = data
    if next_step == "done":
        proposal = create(session, cfg, channel=msg.channel, contact_id=msg.contact_id, source_message_id=msg.id,
                          data=data, actor=f"{msg.channel}:{msg.contact_id}")
        session.delete(draft)
        reply("usulan_done", number=proposal.number, title=proposal.title, kelurahan=proposal.kelurahan)
        return True
    draft.step = next_step
    if next_step == "kelurahan":
        hint = (f" Jika lokasinya di Kelurahan {data['suggest_kel']} (Kecamatan {data['suggest_kec']}), cukup ketik \"ya\"."
                if data.get("suggest_kel") else "")
        reply("usulan_kelurahan", suggestion=hint)
    else:
        reply(f"usulan_{next_step}")
    return True


def _answer(cfg: AppConfig, step: str, msg: Message, text: str, data: dict[str, Any]) -> tuple[str | None, str]:
    """Check one answer and record it in `data`: (problem for the citizen or None, the next step)."""
    if step == "title":
        if not 5 <= len(text) <= 200:
            return "judul usulan perlu 5 sampai 200 huruf. Silakan tulis judulnya.", step
        data["title"] = text
        return None, "description"
    if step == "description":
        if len(text) < 15:
            return "jelaskan usulan Anda sedikit lebih lengkap (paling sedikit 15 huruf).", step
        data["description"] = text[:4000]
        return None, "photo"
    if step == "photo":
        photo = next((a for a in msg.attachments or [] if a.get("kind") == "photo"), None)
        if photo is None:
            return "kami perlu foto lokasi usulan. Silakan kirim fotonya.", step
        data["photo"] = _fetch_photo(cfg, msg.channel, photo["ref"])
        return None, "location"
    if step == "location":
        if not msg.location:
            return "kirimkan titik lokasi dengan fitur \"Lokasi\" (ikon klip kertas → Lokasi).", step
        from core.location import nearest_kelurahan

        data["lat"], data["lon"] = msg.location["lat"], msg.location["lon"]
        near = nearest_kelurahan(data["lat"], data["lon"])
        data["suggest_kel"], data["suggest_kec"] = near.kelurahan, near.kecamatan
        return None, "kelurahan"
    if step == "kelurahan":
        if text.lower() in ("ya", "y", "iya", "benar", "betul") and data.get("suggest_kel"):
            data["kelurahan"], data["kecamatan"] = data["suggest_kel"], data["suggest_kec"]
            return None, "done"
        found = find_kelurahan(text)
        if found is None:
            return f"kelurahan \"{text[:60]}\" tidak kami kenal di {cfg.hub.city}. Periksa ejaannya dan ketik lagi.", step
        data["kelurahan"], data["kecamatan"] = found
        return None, "done"
    return "langkah tidak dikenal; ketik /usulan untuk memulai lagi.", step


def _fetch_photo(cfg: AppConfig, channel: str, ref: str) -> dict[str, Any]:
    """Keep the photo now: provider links expire. A failure is recorded, the proposal still goes on."""
    from core import media

    try:
        data = media.download(cfg, channel, ref)
        return {**media.store(data, media.check(data, cfg)), "ref": ref}
    except media.Refused as exc:
        return {"ref": ref, "refused": str(exc)}
    except Exception as exc:  # noqa: BLE001 - transient provider trouble: keep the reference
        log.warning("proposal photo %s not fetched: %s", ref, exc)
        return {"ref": ref, "refused": f"not fetched: {exc.__class__.__name__}"}


# ---------------------------------------------------------------- proposals and decisions


def create(session: Session, cfg: AppConfig, channel: str, data: dict[str, Any], actor: str,
           contact_id: int | None = None, source_message_id: int | None = None,
           proposer_name: str | None = None, proposer_phone: str | None = None) -> Proposal:
    now = utcnow()
    p = Proposal(channel=channel, contact_id=contact_id, source_message_id=source_message_id,
                 proposer_name=proposer_name, proposer_phone=proposer_phone, title=data["title"],
                 description=data.get("description", ""), photo=data.get("photo"), lat=data.get("lat"),
                 lon=data.get("lon"), kelurahan=data.get("kelurahan"), kecamatan=data.get("kecamatan"),
                 year=now.astimezone(ZoneInfo(cfg.hub.timezone)).year, status="diajukan",
                 created_at=now, updated_at=now)
    session.add(p)
    session.flush()
    p.number = f"USL-{p.year}-{p.id:06d}"
    session.add(ProposalEvent(proposal_id=p.id, at=now, actor=actor, action="submitted", to_status="diajukan"))
    session.add(Event(at=now, actor=actor[:64], action="proposal.submitted", data={"proposal": p.number}))
    return p


def allowed_actions(p: Proposal, role: str, opd_code: str | None = None) -> list[str]:
    step = STEPS.get(p.status)
    if step is None or role not in step.roles:
        return []
    if role == "opd" and (opd_code is None or opd_code != p.opd_code):
        return []
    return ["accept", "reject"] if p.status == "lolos_kecamatan" else ["approve", "reject"]


def decide(session: Session, cfg: AppConfig, p: Proposal, action: str, reason: str, actor: str, role: str,
           user_opd: str | None = None, opd_code: str | None = None) -> ProposalEvent:
    """Apply one verification decision, record it, and queue the message to the proposer.

    The caller commits, then enqueues `core.replies.take_pending(session)` (see `notify_after_commit`).
    """
    if action not in allowed_actions(p, role, user_opd):
        raise DecisionError("Keputusan ini tidak dapat diambil oleh peran Anda pada tahap usulan ini.")
    reason = (reason or "").strip()
    if action in ("reject", "accept") and len(reason) < 5:
        raise DecisionError("Alasan keputusan wajib diisi (paling sedikit 5 huruf).")
    if action == "approve" and p.status == "lolos_kelurahan":
        if not opd_code or cfg.opd(opd_code) is None:
            raise DecisionError("Pilih OPD yang akan memutuskan usulan ini.")
        p.opd_code = opd_code
    before = p.status
    after = {"approve": STEPS[before].next_status, "accept": "diterima", "reject": "ditolak"}[action]
    now = utcnow()
    p.status, p.updated_at = after, now
    if after in FINAL:
        p.reason, p.decided_at = reason, now
    ev = ProposalEvent(proposal_id=p.id, at=now, actor=actor, action=action, from_status=before, to_status=after,
                       reason=reason or None)
    session.add(ev)
    session.flush()
    session.add(Event(at=now, actor=actor[:64], action=f"proposal.{action}",
                      data={"proposal": p.number, "before": before, "after": after, "reason": reason or None}))
    _notify(session, cfg, p, ev)
    return ev


def _notify(session: Session, cfg: AppConfig, p: Proposal, ev: ProposalEvent) -> None:
    if p.source_message_id is None:
        return  # from the web form: the proposer follows it on the public page with the number
    inbound = session.get(Message, p.source_message_id)
    if inbound is None:
        return
    opd = cfg.opd(p.opd_code)
    status = STATUS_LABEL[ev.to_status]
    if ev.to_status == "lolos_kecamatan" and opd:
        status += f" ({opd.name})"
    queue_reply(session, cfg, inbound, "usulan_decision", key=f"usulan_decision:{p.id}:{ev.id}",
                number=p.number, title=p.title, status=status,
                reason=f"Alasan: {ev.reason}" if ev.reason else "")


def notify_after_commit(ids: list[int]) -> None:
    """Queue the decision messages once the decision is committed (a failed enqueue is picked up
    by the outbound reconciler)."""
    from core.queue import enqueue_outbound

    for mid in ids:
        try:
            enqueue_outbound(mid)
        except Exception as exc:  # noqa: BLE001
            log.warning("proposal message %s not queued now (%s); the reconciler will queue it", mid, exc)


def history(session: Session, proposal_id: int) -> list[ProposalEvent]:
    return list(session.exec(select(ProposalEvent).where(ProposalEvent.proposal_id == proposal_id)
                             .order_by(col(ProposalEvent.id))).all())


# ---------------------------------------------------------------- public listing and export


def public_query(kelurahan: str = "", status: str = "", year: int | None = None, opd: str | None = None,  # type: ignore[no-untyped-def]
                 number: str = ""):
    q = select(Proposal)
    if number:
        q = q.where(Proposal.number == number)
    if kelurahan:
        q = q.where(Proposal.kelurahan == kelurahan)
    if status:
        q = q.where(Proposal.status == status)
    if year:
        q = q.where(Proposal.year == year)
    if opd:
        q = q.where(Proposal.opd_code == opd)
    return q.order_by(col(Proposal.kelurahan), col(Proposal.id).desc())


def public_row(cfg: AppConfig, p: Proposal) -> dict[str, Any]:
    """What anyone may see about a proposal: never the proposer, and text redacted like public replies."""
    tz = ZoneInfo(cfg.hub.timezone)
    row: dict[str, Any] = {k: getattr(p, k) for k in PUBLIC_FIELDS}
    row["title"], row["description"] = redact(p.title), redact(p.description or "")
    row["reason"] = redact(p.reason) if p.reason else ""
    row["status_label"] = STATUS_LABEL.get(p.status, p.status)
    row["opd_name"] = cfg.opd(p.opd_code).name if cfg.opd(p.opd_code) else ""
    row["has_photo"] = bool(p.photo and p.photo.get("path"))
    for k in ("created_at", "decided_at"):
        when = getattr(p, k)
        row[k] = when.astimezone(tz).strftime("%d-%m-%Y %H:%M WIB") if when else ""
    return row


CSV_COLUMNS = ("number", "year", "kecamatan", "kelurahan", "title", "description", "lat", "lon", "status_label",
               "opd_name", "reason", "created_at", "decided_at")
CSV_HEADERS = ("Nomor", "Tahun", "Kecamatan", "Kelurahan", "Judul", "Uraian", "Lintang", "Bujur", "Status",
               "OPD", "Alasan keputusan", "Diajukan", "Diputuskan")


def export_csv(cfg: AppConfig, proposals: list[Proposal]) -> str:
    """The list for the Musrenbang meeting (UTF-8 with BOM so spreadsheet programs read it right)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_HEADERS)
    for p in proposals:
        row = public_row(cfg, p)
        w.writerow(["" if row[c] is None else row[c] for c in CSV_COLUMNS])
    return "\ufeff" + buf.getvalue()
