"""The ticket view (conversation, location, classifier decision, SLA clocks) and its actions.

Every route loads the ticket through `deps.ticket_for`, so an OPD officer gets 403 for another
OPD's ticket on every URL, including the action POSTs. Actions commit first, then enqueue the
replies they created (core.queue.enqueue_outbound), so nothing is sent for a rolled-back change.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, or_, select

from core import sla
from core.console import actions, deps
from core.console.models import CannedResponse, User
from core.db import session_scope
from core.models import Contact, Event, Message, Ticket, utcnow
from core.queue import enqueue_outbound
from core.replies import take_pending

router = APIRouter(prefix="/console", dependencies=[Depends(deps.csrf_protect)], include_in_schema=False)
STAFF = deps.require(*deps.STAFF)
OPERATORS = deps.require("admin", "operator")
ADMINS = deps.require("admin")


def _conversation(s: Session, ticket: Ticket) -> list[dict[str, Any]]:
    msgs = s.exec(select(Message).where(Message.ticket_id == ticket.id)
                  .order_by(col(Message.received_at), col(Message.id))).all()
    cids = {m.contact_id for m in msgs if m.contact_id}
    contacts = {c.id: c for c in s.exec(select(Contact).where(col(Contact.id).in_(cids))).all()} if cids else {}
    return [{"m": m, "contact": contacts.get(m.contact_id)} for m in msgs]


def _canned(s: Session, ticket: Ticket) -> list[CannedResponse]:
    return list(s.exec(select(CannedResponse).where(or_(col(CannedResponse.opd_code).is_(None),
                                                        CannedResponse.opd_code == ticket.opd_code))
                       .order_by(col(CannedResponse.title))).all())


def _view(ctx: deps.Ctx, ticket_id: int, error: str = "", status: int = 200, notice: str = "") -> Response:
    with session_scope() as s:
        ticket = deps.ticket_for(ctx, s, ticket_id)
        contact = s.get(Contact, ticket.contact_id) if ticket.contact_id else None
        events = s.exec(select(Event).where(Event.ticket_id == ticket.id).order_by(col(Event.at), col(Event.id))).all()
        canned = _canned(s, ticket)
        users = list(s.exec(select(User.username).where(User.active == True)).all())  # noqa: E712
        convo = _conversation(s, ticket)
    now = utcnow()
    clocks = sla.clocks(ctx.cfg, ticket, now)
    return deps.render(ctx, "ticket.html", status_code=status, ticket=ticket, contact=contact, convo=convo,
                       events=events, notes=[e for e in events if e.action == "note"], canned=canned, clocks=clocks,
                       now=now, opds=ctx.cfg.opds, opd=ctx.cfg.opd(ticket.opd_code), error=error, notice=notice,
                       transitions=actions.TRANSITIONS.get(ticket.status, ()), users=users,
                       undone={(e.data or {}).get("undoes") for e in events if e.action == "dedup.unmerge"})


@router.get("/tickets/{ticket_id}")
def ticket_view(request: Request, ticket_id: int, ctx: deps.Ctx = Depends(STAFF)) -> Response:
    from core.console.mentions import mark_read

    with session_scope() as s:  # opening the ticket reads the user's mentions on it
        mark_read(s, ctx.username, ticket_id)
    notice = ctx.t("Tersimpan.") if request.query_params.get("ok") else ""
    not_told = [n for n in request.query_params.get("not_told", "").split(",") if actions.MENTION_NAME.fullmatch(n)]
    if not_told:
        notice += " " + ctx.t("Tidak diberi tahu (tidak berhak melihat laporan ini): {names}",
                              names=", ".join("@" + n for n in not_told))
    return _view(ctx, ticket_id, notice=notice.strip())


@router.get("/tickets/{ticket_id}/conversation")
def conversation(ticket_id: int, ctx: deps.Ctx = Depends(STAFF)) -> Response:
    """The conversation alone, polled by HTMX so delivery states update in place."""
    with session_scope() as s:
        ticket = deps.ticket_for(ctx, s, ticket_id)
        convo = _conversation(s, ticket)
    return deps.render(ctx, "_conversation.html", ticket=ticket, convo=convo)


@router.get("/tickets/{ticket_id}/reply-text")
def reply_text(request: Request, ticket_id: int, ctx: deps.Ctx = Depends(STAFF)) -> Response:
    """The reply box pre-filled with a canned response (HTMX swap on choosing one)."""
    text = ""
    with session_scope() as s:
        ticket = deps.ticket_for(ctx, s, ticket_id)
        try:
            cid = int(request.query_params.get("canned_id") or 0)
        except ValueError:
            cid = 0
        item = s.get(CannedResponse, cid) if cid else None
        if item is not None and item.opd_code in (None, ticket.opd_code):
            text = item.text.replace("{ticket}", ticket.number or "")
    return deps.render(ctx, "_reply_text.html", text=text)


_MIME_OK = {"image/jpeg", "image/png", "image/webp"}


@router.get("/tickets/{ticket_id}/media/{message_id}/{index}")
def media(ticket_id: int, message_id: int, index: int, ctx: deps.Ctx = Depends(STAFF)) -> Response:
    """A citizen's photo kept as evidence (core.media), served only to those who may see the ticket."""
    import re

    from fastapi.responses import FileResponse

    from core.config import data_dir

    with session_scope() as s:
        deps.ticket_for(ctx, s, ticket_id)
        msg = s.get(Message, message_id)
        if msg is None or msg.ticket_id != ticket_id or not 0 <= index < len(msg.attachments or []):
            raise deps.NotFound()
        evidence = (msg.attachments[index] or {}).get("evidence") or {}
    path, mime = str(evidence.get("path") or ""), evidence.get("mime")
    if not re.fullmatch(r"media/[0-9a-f]{64}\.(jpg|png|webp)", path) or mime not in _MIME_OK:
        raise deps.NotFound()
    file = data_dir() / path
    if not file.is_file():
        raise deps.NotFound()
    return FileResponse(file, media_type=mime, headers={"Cache-Control": "private, max-age=3600"})


def _act(request: Request, ctx: deps.Ctx, ticket_id: int, fn: Any) -> Response:
    """Run an action in one transaction, then enqueue its replies; errors re-show the page (400)."""
    try:
        with session_scope() as s:
            ticket = deps.ticket_for(ctx, s, ticket_id)
            user = s.get(User, ctx.user.id)  # type: ignore[union-attr]
            result = fn(s, ticket, user)
            redirect_to = result if isinstance(result, str) else None
            pending = take_pending(s)
    except actions.ActionError as exc:
        return _view(ctx, ticket_id, error=str(exc), status=400)
    for mid in pending:
        enqueue_outbound(mid)
    return RedirectResponse(redirect_to or f"/console/tickets/{ticket_id}?ok=1", status_code=303)


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


@router.post("/tickets/{ticket_id}/reply")
async def post_reply(request: Request, ticket_id: int, ctx: deps.Ctx = Depends(STAFF)) -> Response:
    f = await _form(request)
    return _act(request, ctx, ticket_id, lambda s, t, u: actions.reply(
        s, ctx.cfg, t, u, f.get("text", ""), everyone=f.get("everyone") == "1"))


@router.post("/tickets/{ticket_id}/status")
async def post_status(request: Request, ticket_id: int, ctx: deps.Ctx = Depends(STAFF)) -> Response:
    f = await _form(request)
    return _act(request, ctx, ticket_id, lambda s, t, u: actions.change_status(
        s, ctx.cfg, t, u, f.get("status", ""), f.get("reason", ""), f.get("message", "")))


@router.post("/tickets/{ticket_id}/reroute")
async def post_reroute(request: Request, ticket_id: int, ctx: deps.Ctx = Depends(STAFF)) -> Response:
    f = await _form(request)
    # An officer who hands a ticket to another OPD loses sight of it: back to the inbox.
    after = "/console?ok=1" if ctx.role == "opd" else None

    def run(s: Session, t: Ticket, u: User) -> str | None:
        actions.reroute(s, ctx.cfg, t, u, f.get("opd", ""), f.get("reason", ""))
        return after

    return _act(request, ctx, ticket_id, run)


@router.post("/tickets/{ticket_id}/confirm")
def post_confirm(request: Request, ticket_id: int, ctx: deps.Ctx = Depends(STAFF)) -> Response:
    return _act(request, ctx, ticket_id, lambda s, t, u: actions.confirm(s, t, u))


@router.post("/tickets/{ticket_id}/note")
async def post_note(request: Request, ticket_id: int, ctx: deps.Ctx = Depends(STAFF)) -> Response:
    f = await _form(request)

    def run(s: Session, t: Ticket, u: User) -> str:
        refused = actions.note(s, ctx.cfg, t, u, f.get("text", ""))
        return f"/console/tickets/{t.id}?ok=1" + (f"&not_told={','.join(refused)}" if refused else "") + "#notes"

    return _act(request, ctx, ticket_id, run)


@router.post("/tickets/{ticket_id}/spam")
def post_spam(request: Request, ticket_id: int, ctx: deps.Ctx = Depends(OPERATORS)) -> Response:
    return _act(request, ctx, ticket_id, lambda s, t, u: actions.mark_spam(s, t, u))


@router.post("/tickets/{ticket_id}/block")
async def post_block(request: Request, ticket_id: int, ctx: deps.Ctx = Depends(ADMINS)) -> Response:
    f = await _form(request)
    return _act(request, ctx, ticket_id, lambda s, t, u: actions.block_sender(s, t, u, f.get("reason", "")))


@router.post("/tickets/{ticket_id}/merge")
async def post_merge(request: Request, ticket_id: int, ctx: deps.Ctx = Depends(OPERATORS)) -> Response:
    f = await _form(request)

    def run(s: Session, source: Ticket, user: User) -> str:
        number = f.get("target", "").strip().upper()
        target = s.exec(select(Ticket).where(Ticket.number == number)).first()
        if target is None:
            raise actions.ActionError(f"Laporan {number or '?'} tidak ditemukan.")
        actions.merge(s, ctx.cfg, source, target, user, f.get("reason", ""))
        return f"/console/tickets/{target.id}?ok=1"

    return _act(request, ctx, ticket_id, run)


@router.post("/tickets/{ticket_id}/split")
async def post_split(request: Request, ticket_id: int, ctx: deps.Ctx = Depends(OPERATORS)) -> Response:
    f = await _form(request)

    def run(s: Session, ticket: Ticket, user: User) -> str:
        try:
            msg = s.get(Message, int(f.get("message_id", "0")))
        except ValueError:
            msg = None
        if msg is None or msg.ticket_id != ticket.id:
            raise actions.ActionError("Pesan tidak ada di laporan ini.")
        new = actions.split(s, ctx.cfg, msg, user, f.get("reason", ""))
        return f"/console/tickets/{new.id}?ok=1"

    return _act(request, ctx, ticket_id, run)


@router.post("/tickets/{ticket_id}/resend")
async def post_resend(request: Request, ticket_id: int, ctx: deps.Ctx = Depends(STAFF)) -> Response:
    f = await _form(request)
    mid = int(f["message_id"]) if f.get("message_id", "").isdigit() else 0
    return _act(request, ctx, ticket_id, lambda s, t, u: actions.resend(s, t, mid, u))


@router.post("/tickets/{ticket_id}/unmerge")
async def post_unmerge(request: Request, ticket_id: int, ctx: deps.Ctx = Depends(OPERATORS)) -> Response:
    f = await _form(request)

    def run(s: Session, ticket: Ticket, user: User) -> str:
        event_id = int(f["event_id"]) if f.get("event_id", "").isdigit() else 0
        source = actions.unmerge(s, ticket, event_id, user, f.get("reason", ""))
        return f"/console/tickets/{source.id}?ok=1"

    return _act(request, ctx, ticket_id, run)


@router.post("/bulk")
async def bulk(request: Request, ctx: deps.Ctx = Depends(STAFF)) -> Response:
    """Re-route or change the status of the selected tickets, each checked and audited on its own."""
    form = await request.form()
    ids = [int(v) for v in form.getlist("ids") if isinstance(v, str) and v.isdigit()][:500]
    action, _, value = str(form.get("op") or "").partition(":")
    reason = str(form.get("reason") or "")
    done, errors, pending = 0, [], []
    with session_scope() as s:
        user = s.get(User, ctx.user.id)  # type: ignore[union-attr]
        for tid in ids:
            ticket = deps.ticket_for(ctx, s, tid)  # 403 for any ticket outside the officer's OPD
            try:
                with s.begin_nested():
                    if action == "reroute":
                        actions.reroute(s, ctx.cfg, ticket, user, value, reason)
                    elif action == "status":
                        actions.change_status(s, ctx.cfg, ticket, user, value, reason)
                    else:
                        raise actions.ActionError("Aksi massal tidak dikenal.")
                done += 1
            except actions.ActionError as exc:
                errors.append(f"{ticket.number}: {exc}")
        pending = take_pending(s)
    for mid in pending:
        enqueue_outbound(mid)
    if errors:
        return deps.render(ctx, "error.html", status_code=400, title=ctx.t("Aksi massal untuk yang dipilih"),
                           message=f"{done} OK; " + "; ".join(errors))
    return RedirectResponse("/console?ok=1", status_code=303)
