"""@mentions in internal notes reach the people mentioned.

A note naming ``@username`` gives that console user a notification: a count in the header, a row
under "Disebut" linking to the ticket, read once they open it (from the list or the ticket itself).
Only people who may see the ticket are told (an OPD officer mentioned on another OPD's ticket is
not: the note records the name as not delivered, and the author sees it). A user with a notify
target (``notify`` on the user, like config.yaml's ``opds[].officers``) also gets a short message
there through the outbound queue (`core.notify.notify_staff`, template ``mention``); it names the
ticket and the author, never the note itself, which stays in the console.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, func, select

from core.config import AppConfig, NotifyTarget
from core.console import deps
from core.console.models import Mention, User
from core.db import session_scope
from core.models import Event, Ticket, utcnow

router = APIRouter(prefix="/console", dependencies=[Depends(deps.csrf_protect)], include_in_schema=False)
STAFF = deps.require(*deps.STAFF)
PAGE = 200


def split_by_access(session: Session, ticket: Ticket, names: list[str], author: str) -> tuple[list[User], list[str]]:
    """The mentioned users who may see the ticket, and the names of those who may not (or are disabled)."""
    if not names:
        return [], []
    users = session.exec(select(User).where(col(User.username).in_(names)).order_by(col(User.username))).all()
    told = [u for u in users if u.username != author and deps.user_may_see(u, ticket)]
    refused = [u.username for u in users if u.username != author and u not in told]
    return told, refused


def notify(session: Session, cfg: AppConfig, ticket: Ticket, note: Event, users: list[User], author: str) -> None:
    """One notification per user; a copy to their notify target when they have one."""
    from core.notify import notify_staff
    from core.pipeline import opd_name

    now = utcnow()
    for user in users:
        mention = Mention(username=user.username, ticket_id=ticket.id, event_id=note.id, author=author, created_at=now)
        session.add(mention)
        session.flush()
        if user.notify:
            mention.message_id = notify_staff(
                session, cfg, ticket, NotifyTarget.model_validate(user.notify), "mention", key=f"mention:{mention.id}",
                action="mention.notify", actor=author,
                values={"author": author, "ticket": ticket.number, "opd": opd_name(cfg, ticket.opd_code),
                        "link": f"{cfg.hub.public_url.rstrip('/')}/console/tickets/{ticket.id}"})


def _visible(user: User):  # type: ignore[no-untyped-def]
    """Mentions of `user` on tickets they may still see (a re-routed ticket drops out for an officer)."""
    q = select(Mention, Ticket).join(Ticket, col(Ticket.id) == Mention.ticket_id).where(Mention.username == user.username)
    return q.where(Ticket.opd_code == user.opd_code) if user.role == "opd" else q


def unread_count(user: User | None) -> int:
    if user is None:
        return 0
    q = _visible(user).where(col(Mention.read_at).is_(None)).subquery()
    with session_scope() as s:
        return int(s.exec(select(func.count()).select_from(q)).one())


def mark_read(session: Session, username: str, ticket_id: int) -> None:
    """The user opened the ticket: its mentions of them are read (a write only if some were unread)."""
    unread = session.exec(select(Mention).where(Mention.username == username, Mention.ticket_id == ticket_id,
                                                col(Mention.read_at).is_(None))).all()
    now = utcnow()
    for m in unread:
        m.read_at = now
        session.add(m)


def listing(user: User) -> list[dict]:
    """Newest first, with the note's text and who wrote it."""
    with session_scope() as s:
        rows = s.exec(_visible(user).order_by(col(Mention.id).desc()).limit(PAGE)).all()
        notes = {e.id: e for e in s.exec(select(Event).where(col(Event.id).in_([m.event_id for m, _ in rows]))).all()}
    return [{"m": m, "ticket": t, "text": ((notes[m.event_id].data or {}).get("text") if m.event_id in notes else "")}
            for m, t in rows]


@router.get("/mentions")
def mentions_page(ctx: deps.Ctx = Depends(STAFF)) -> Response:
    return deps.render(ctx, "mentions.html", rows=listing(ctx.user))  # type: ignore[arg-type]


@router.get("/mentions/{mention_id}")
def open_mention(mention_id: int, ctx: deps.Ctx = Depends(STAFF)) -> Response:
    """Follow a notification: mark it read, go to the ticket's notes (403 if it is no longer yours to see)."""
    with session_scope() as s:
        m = s.get(Mention, mention_id)
        if m is None or m.username != ctx.username:
            raise deps.NotFound()
        deps.ticket_for(ctx, s, m.ticket_id)
        mark_read(s, ctx.username, m.ticket_id)
    return RedirectResponse(f"/console/tickets/{m.ticket_id}#notes", status_code=303)


@router.post("/mentions/read")
def read_all(ctx: deps.Ctx = Depends(STAFF)) -> Response:
    with session_scope() as s:
        now = utcnow()
        for m, _ in s.exec(_visible(ctx.user).where(col(Mention.read_at).is_(None))).all():  # type: ignore[arg-type]
            m.read_at = now
            s.add(m)
    return RedirectResponse("/console/mentions", status_code=303)
