"""Instagram: comments (and posts tagging the city) read with instaloader, replies through the Graph API.

Instagram offers no webhook a city can get without Meta app review, so the hub polls with
instaloader using a session cookie file the admin creates once (`instaloader --login ACCOUNT`).
Each recent post keeps its own cursor (the newest comment id ingested) in the database, saved
after every stored comment, so a restart or a failure mid-round never repeats or skips one.
Login trouble, checkpoints and rate limits are written to a status record (`read_status()`),
shown to admins with what to do, and polling backs off without moving any cursor.

A reply to a comment goes through `POST /{ig-comment-id}/replies` with the page token from the
environment. Without a token (or when it is refused) the reply goes to the manual outbox
(delivery_state "manual"): an operator posts it by hand and marks it sent (`mark_manual_sent`).
Comments are public, so replies never carry phone numbers, NIK or e-mail addresses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from itertools import islice
from typing import Any, ClassVar

import httpx
from pydantic import Field, SecretStr, model_validator

from connectors.base import (ChannelSettings, Connector, Outgoing, ParseError, PermanentError, RetryableError,
                             SendResult, strict_parse)
from core.message import Attachment, InboundMessage

log = logging.getLogger(__name__)

CHANNEL = "instagram"
RETRYABLE_GRAPH_CODES = {1, 2, 4, 17, 32, 341, 613}  # transient, app/user/page rate limits


class InstagramSettings(ChannelSettings):
    username: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._]{1,30}$")  # the city's account
    session_file: str | None = None  # instaloader session file (cookies), created by the admin
    session_username: str | None = None  # the account the session belongs to (default: username)
    graph_token: SecretStr | None = None  # page access token; without it replies go to the manual outbox
    graph_api_base: str = "https://graph.facebook.com/v21.0"
    web_base: str | None = None  # a local fake Instagram (tests, sandbox) instead of instagram.com
    poll_interval: float = Field(default=300.0, ge=1)  # seconds between rounds
    max_backoff: float = Field(default=3600.0, ge=1)
    recent_posts: int = Field(default=6, ge=1, le=50)  # how many of the newest posts are watched
    include_tagged: bool = True  # also posts that tag the city's account
    backfill_hours: int = Field(default=48, ge=0)  # on a post's first round, older comments are skipped
    max_text: int = 2200  # Instagram's comment length limit

    @model_validator(mode="after")
    def _needs(self) -> "InstagramSettings":
        if self.enabled and not self.username:
            raise ValueError("username (the city's Instagram account) is required when the channel is enabled")
        if self.enabled and not self.session_file:
            raise ValueError("session_file is required when the channel is enabled "
                             "(create it with `instaloader --login ACCOUNT`)")
        return self


class RateLimited(Exception):
    """Instagram asked us to slow down; the round stops and polling backs off."""


@dataclass
class PollResult:
    state: str  # ok | rate_limited | login_required | checkpoint | not_found | unreachable
    ingested: int
    delay: float


# ------------------------------------------------------------------ status record for the admin view

ACTIONS = {
    "ok": "Tidak perlu tindakan.",
    "rate_limited": "Instagram membatasi permintaan. Hub akan mencoba lagi otomatis; jangan jalankan "
                    "instaloader lain dengan akun yang sama.",
    "login_required": "Sesi Instagram tidak berlaku. Buat ulang berkas sesi dengan `instaloader --login AKUN` "
                      "lalu simpan di lokasi channels.instagram.session_file.",
    "checkpoint": "Instagram meminta verifikasi (checkpoint). Masuk ke akun lewat aplikasi atau peramban, "
                  "selesaikan verifikasi, lalu buat ulang berkas sesi.",
    "not_found": "Akun channels.instagram.username tidak ditemukan. Periksa ejaan nama akun.",
    "unreachable": "Instagram tidak dapat dihubungi. Periksa koneksi internet server.",
    "token": "Token Graph API ditolak (kedaluwarsa?). Balasan masuk ke kotak keluar manual sampai "
             "INSTAGRAM_GRAPH_TOKEN diperbarui.",
}


def save_status(state: str, detail: str = "", retry_at: datetime | None = None, attempts: int = 0) -> None:
    from core.cursors import save_cursor

    save_cursor(CHANNEL, "status", json.dumps({
        "state": state, "detail": detail[:500], "action": ACTIONS.get(state, ""), "attempts": attempts,
        "at": datetime.now(timezone.utc).isoformat(), "retry_at": retry_at.isoformat() if retry_at else None}))


def read_status() -> dict[str, Any] | None:
    """The poller's last state for the admin view: state, detail, action (what to do), at, retry_at."""
    from core.cursors import load_cursor

    raw = load_cursor(CHANNEL, "status")
    return json.loads(raw) if raw else None


# ------------------------------------------------------------------ instaloader, optionally pointed at a fake


def make_context(settings: InstagramSettings):  # type: ignore[no-untyped-def]
    """An instaloader context that never sleeps on its own (a rate limit raises RateLimited) and, when
    `web_base` is set, sends its www/i.instagram.com requests to that server."""
    from instaloader import InstaloaderContext, RateController

    adapter = None
    if settings.web_base:
        from connectors.fakes.instagram import rewrite_adapter

        adapter = rewrite_adapter(settings.web_base)

    class _NoWait(RateController):
        def sleep(self, secs: float) -> None:
            if secs > 1:
                raise RateLimited(f"instaloader would wait {secs:.0f}s")

        def handle_429(self, query_type: str) -> None:
            raise RateLimited("HTTP 429 Too Many Requests")

    class _Context(InstaloaderContext):
        def _mount(self, session):  # type: ignore[no-untyped-def]
            if adapter is not None:
                session.mount("https://www.instagram.com", adapter)
                session.mount("https://i.instagram.com", adapter)
            return session

        @property
        def _session(self):  # type: ignore[no-untyped-def]
            return self.__dict__["_aduan_session"]

        @_session.setter
        def _session(self, session) -> None:  # type: ignore[no-untyped-def]
            self.__dict__["_aduan_session"] = self._mount(session)

        def get_anonymous_session(self):  # type: ignore[no-untyped-def]
            return self._mount(super().get_anonymous_session())

        def get_json(self, path, params, host="www.instagram.com", session=None,  # type: ignore[no-untyped-def]
                     response_headers=None, use_post=False):
            if session is not None:
                self._mount(session)
            return super().get_json(path, params, host, session, response_headers, use_post)

        def _get_page(self, session, path):  # type: ignore[no-untyped-def]
            return super()._get_page(self._mount(session), path)

    ctx = _Context(sleep=False, quiet=True, max_connection_attempts=2, request_timeout=20,
                   rate_controller=lambda c: _NoWait(c), iphone_support=True)
    ctx.raise_all_errors = True
    if settings.session_file:
        with open(settings.session_file, "rb") as fh:
            ctx.load_session(settings.session_username or settings.username, pickle.load(fh))
    return ctx


def classify_error(exc: BaseException) -> str:
    """Map an instaloader/requests failure to what the admin must know."""
    import requests
    from instaloader.exceptions import (AbortDownloadException, ConnectionException, LoginException,
                                        LoginRequiredException, ProfileNotExistsException, TooManyRequestsException)

    text = str(exc).lower()
    if isinstance(exc, (RateLimited, TooManyRequestsException)) or "429" in text or "wait a few minutes" in text:
        return "rate_limited"
    if "checkpoint" in text or "challenge" in text:
        return "checkpoint"
    if isinstance(exc, (LoginRequiredException, LoginException, FileNotFoundError, pickle.UnpicklingError, KeyError)) \
            or "login" in text or "logged out" in text:
        return "login_required"
    if isinstance(exc, ProfileNotExistsException):
        return "not_found"
    if isinstance(exc, (ConnectionException, AbortDownloadException, requests.RequestException, OSError)):
        return "unreachable"
    return "unreachable"


class InstagramConnector(Connector):
    name: ClassVar[str] = CHANNEL
    Settings = InstagramSettings
    settings: InstagramSettings
    polls: ClassVar[bool] = True

    def __init__(self, settings: InstagramSettings):
        super().__init__(settings)
        self._failures = 0  # consecutive failed rounds: the backoff doubles with each
        self._partial = 0  # messages stored in the current round (kept when the round fails midway)

    @classmethod
    @strict_parse
    def parse(cls, raw: dict[str, Any]) -> InboundMessage | None:
        """{"kind": "comment", "comment": {...}, "post": {...}} or {"kind": "post", "post": {...}} (as the
        poller records them from instaloader) -> InboundMessage. Everything on Instagram here is public."""
        if not isinstance(raw, dict) or raw.get("kind") not in ("comment", "post"):
            raise ParseError("not an Instagram item: kind must be 'comment' or 'post'")
        post = raw["post"]
        shortcode = str(post["shortcode"])
        if raw["kind"] == "comment":
            c = raw["comment"]
            owner = c["owner"]
            username = str(owner.get("username") or owner["id"])
            return InboundMessage(
                channel=CHANNEL, external_id=str(int(c["id"])), sender=username, sender_display=f"@{username}",
                text=str(c["text"]), received_at=datetime.fromtimestamp(int(c["created_at"]), tz=timezone.utc),
                in_reply_to=shortcode, public=True, raw=raw)
        owner = post["owner"]
        username = str(owner.get("username") or owner["id"])
        attachments = [Attachment(kind="photo", ref=url, mime_type="image/jpeg")
                       for url in post.get("images", []) if isinstance(url, str) and url.startswith("http")]
        return InboundMessage(
            channel=CHANNEL, external_id=f"post:{shortcode}", sender=username, sender_display=f"@{username}",
            text=str(post.get("caption") or ""), attachments=attachments, in_reply_to=shortcode, public=True,
            received_at=datetime.fromtimestamp(int(post["taken_at"]), tz=timezone.utc), raw=raw)

    # ------------------------------------------------------------ outbound

    def send(self, out: Outgoing) -> SendResult:
        """Reply under the citizen's comment with the Graph API, or hand the reply to the manual outbox."""
        from connectors.twitter_text import redact

        text = redact(out.text)
        comment_id = (out.context.get("comment") or {}).get("id") if out.context.get("kind") == "comment" else None
        token = self.settings.graph_token.get_secret_value() if self.settings.graph_token else ""
        if not token or comment_id is None:
            return SendResult(provider_id="", parts=0, state="manual")
        url = f"{self.settings.graph_api_base.rstrip('/')}/{comment_id}/replies"
        ids: list[str] = []
        for part in self.split(text):
            try:
                resp = httpx.post(url, data={"message": part, "access_token": token}, timeout=15)
            except httpx.HTTPError as exc:
                raise RetryableError(f"Instagram Graph API unreachable: {exc}") from None
            if resp.status_code == 200:
                ids.append(str(resp.json()["id"]))
                continue
            err = _graph_error(resp)
            code = err.get("code")
            if resp.status_code >= 500 or resp.status_code == 429 or code in RETRYABLE_GRAPH_CODES:
                raise RetryableError(f"Instagram Graph API: {err.get('message')}", retry_after=60)
            if code == 190 and not ids:  # token expired or revoked: the operator sends it by hand
                save_status("token", str(err.get("message", "")))
                return SendResult(provider_id="", parts=0, state="manual")
            raise PermanentError(f"Instagram Graph API refused: {err.get('message')}", code=str(code))
        return SendResult(provider_id=",".join(ids), parts=len(ids))

    def check(self) -> str:
        from instaloader import Profile

        profile = Profile.from_username(make_context(self.settings), self.settings.username or "")
        return f"@{profile.username}"

    # ------------------------------------------------------------ inbound

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every `poll_interval` seconds; after a failure wait longer (doubling, capped)."""
        while not stop.is_set():
            result = await asyncio.to_thread(self.poll_once)
            try:
                await asyncio.wait_for(stop.wait(), timeout=result.delay)
            except asyncio.TimeoutError:
                pass

    def poll_once(self) -> PollResult:
        """One round: new comments on the recent posts, then new posts tagging the account."""
        try:
            ingested = self._round()
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status and a backoff
            state = classify_error(exc)
            self._failures += 1
            delay = min(self.settings.max_backoff, self.settings.poll_interval * 2 ** self._failures)
            retry_at = datetime.now(timezone.utc) + timedelta(seconds=delay)
            log.warning("instagram poll failed (%s): %s; next try in %.0fs", state, exc, delay)
            save_status(state, f"{type(exc).__name__}: {exc}", retry_at, self._failures)
            return PollResult(state=state, ingested=self._partial, delay=delay)
        self._failures = 0
        save_status("ok", f"{ingested} pesan baru")
        return PollResult(state="ok", ingested=ingested, delay=self.settings.poll_interval)

    def _round(self) -> int:
        from instaloader import Profile

        from core.cursors import load_cursor, save_cursor
        from core.intake import accept

        self._partial = 0
        ctx = make_context(self.settings)
        me = (self.settings.username or "").lower()
        profile = Profile.from_username(ctx, me)
        cutoff = datetime.now(timezone.utc) - timedelta(hours=self.settings.backfill_hours)
        for post in islice(profile.get_posts(), self.settings.recent_posts):
            key = f"post:{post.shortcode}"
            last = int(load_cursor(CHANNEL, key) or 0)
            fresh = [c for c in post.get_comments() if int(c.id) > last]
            for c in sorted(fresh, key=lambda c: int(c.id)):
                owner = c.owner
                created = c.created_at_utc.replace(tzinfo=timezone.utc)
                if owner.username.lower() != me and (last or created >= cutoff):
                    raw = {"kind": "comment",
                           "comment": {"id": str(c.id), "text": c.text, "created_at": int(created.timestamp()),
                                       "owner": {"id": str(owner.userid), "username": owner.username}},
                           "post": {"shortcode": post.shortcode, "id": str(post.mediaid), "owner": me}}
                    msg = self.parse(raw)
                    if msg is not None:
                        accept(msg)
                        self._partial += 1
                save_cursor(CHANNEL, key, str(int(c.id)))  # after the comment is stored: never twice
        if self.settings.include_tagged:
            self._tagged(profile, cutoff, accept, load_cursor, save_cursor)
        return self._partial

    def _tagged(self, profile, cutoff, accept, load_cursor, save_cursor) -> None:  # type: ignore[no-untyped-def]
        """Citizens' own posts that tag the account (their photo is the evidence)."""
        last = int(load_cursor(CHANNEL, "tagged") or 0)
        fresh = []
        for post in islice(profile.get_tagged_posts(), 50):
            if post.mediaid <= last:
                break
            fresh.append(post)
        for post in sorted(fresh, key=lambda p: p.mediaid):
            taken = post.date_utc.replace(tzinfo=timezone.utc)
            if last or taken >= cutoff:
                raw = {"kind": "post", "post": {
                    "shortcode": post.shortcode, "id": str(post.mediaid), "caption": post.caption or "",
                    "taken_at": int(taken.timestamp()), "images": [post._node.get("display_url")],
                    "owner": {"id": str(post.owner_id), "username": post.owner_username}}}
                msg = self.parse(raw)
                if msg is not None:
                    accept(msg)
                    self._partial += 1
            save_cursor(CHANNEL, "tagged", str(post.mediaid))


def _graph_error(resp: httpx.Response) -> dict[str, Any]:
    try:
        err = resp.json().get("error") or {}
        return err if isinstance(err, dict) else {"message": str(err)}
    except ValueError:
        return {"message": f"HTTP {resp.status_code}"}


# ------------------------------------------------------------------ manual outbox


def manual_outbox(limit: int = 200) -> list[dict[str, Any]]:
    """Replies waiting for an operator to post them by hand, with where to post them."""
    from sqlmodel import select

    from connectors.twitter_text import redact
    from core.db import session_scope
    from core.models import Message

    with session_scope() as s:
        rows = s.exec(select(Message).where(Message.channel == CHANNEL, Message.direction == "out",
                                            Message.delivery_state == "manual").order_by(Message.id).limit(limit)).all()
        items = []
        for out in rows:
            inbound = s.get(Message, out.reply_to_id) if out.reply_to_id else None
            raw = (inbound.raw or {}) if inbound else {}
            shortcode = (raw.get("post") or {}).get("shortcode") or (inbound.in_reply_to if inbound else None)
            items.append({"id": out.id, "ticket_id": out.ticket_id, "text": redact(out.text),
                          "comment_id": (raw.get("comment") or {}).get("id"),
                          "url": f"https://www.instagram.com/p/{shortcode}/" if shortcode else None})
    return items


def mark_manual_sent(message_id: int, actor: str) -> None:
    """An operator posted the reply by hand: record it as sent, by whom and when (console action)."""
    from core.db import session_scope
    from core.models import Event, Message, utcnow

    with session_scope() as s:
        out = s.get(Message, message_id)
        if out is None or out.direction != "out" or out.delivery_state != "manual":
            raise ValueError(f"message {message_id} is not waiting in the manual outbox")
        out.delivery_state, out.sent_at, out.error = "sent", utcnow(), None
        s.add(Event(at=utcnow(), actor=actor, action="outbound.manual_sent", ticket_id=out.ticket_id,
                    message_id=message_id, data={"channel": out.channel}))
