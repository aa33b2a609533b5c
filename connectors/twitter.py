"""X (Twitter) through tweepy: mentions and DMs polled in, reply tweets and DMs out.

Inbound is polled because X has no free push: mentions of the city account
(`get_users_mentions` with `since_id`) and DMs (`get_direct_message_events`). Messages are
stored through `core.intake.accept` *before* the cursor moves, so a restart or a 429 half-way
through a poll neither skips nor repeats. The X tier a city pays for caps reads per month, so
polls are spread to last the month (see `connectors.twitter_budget`), and a 429 is honoured
until its `x-rate-limit-reset`.

Outbound: a mention is answered by a reply tweet within 280 weighted characters, without
personal data; a longer or redacted answer goes in full by DM, with a link to the public status
page in the tweet. A DM is answered by DM. tweepy hard-codes https://api.twitter.com, so a
requests adapter re-targets it at `api_base` (a fake X on loopback in tests) while tweepy still
builds, signs and parses every request.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, ClassVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from requests.adapters import HTTPAdapter

from connectors.base import strict_parse
from connectors.base import (ChannelSettings, Connector, Outgoing, ParseError, PermanentError, RetryableError,
                             SendResult, split_text)
from connectors.twitter_budget import Budget
from connectors.twitter_text import MAX_WEIGHTED, redact, shorten, weighted_length
from core.message import Attachment, GeoPoint, InboundMessage

log = logging.getLogger(__name__)

X_HOSTS = ("https://api.twitter.com", "https://api.x.com")
TWEET_FIELDS = ["id", "text", "author_id", "created_at", "conversation_id", "in_reply_to_user_id",
                "referenced_tweets", "attachments", "geo", "lang"]
USER_FIELDS = ["id", "name", "username"]
MEDIA_FIELDS = ["media_key", "type", "url", "preview_image_url", "width", "height"]
DM_FIELDS = ["id", "text", "event_type", "created_at", "sender_id", "dm_conversation_id", "attachments",
             "referenced_tweets"]
DM_MAX_TEXT = 10_000
TWITTER_EPOCH_MS = 1288834974657
_MEDIA_KIND = {"photo": "photo", "video": "video", "animated_gif": "video"}


class TwitterSettings(ChannelSettings):
    bearer_token: SecretStr | None = None  # app-only token: reads mentions without user context
    consumer_key: SecretStr | None = None
    consumer_secret: SecretStr | None = None
    access_token: SecretStr | None = None  # the city account's token: DMs and posting need it
    access_token_secret: SecretStr | None = None
    user_id: str | None = Field(default=None, pattern=r"^\d{1,20}$")  # empty: looked up with /2/users/me
    api_base: str = "https://api.twitter.com"
    poll_interval: float = Field(default=60.0, ge=1)  # shortest time between two polls, seconds
    monthly_read_budget: int | None = Field(default=None, ge=1)  # posts + DM events X lets the tier read
    poll_dms: bool = True
    dm_long_replies: bool = True  # send the full answer by DM when the public reply must be shortened
    backfill_hours: int = Field(default=24, ge=0)  # on the very first start, how far back to read
    max_results: int = Field(default=100, ge=5, le=100)
    tweets_per_15min: int = Field(default=100, ge=1)
    dms_per_15min: int = Field(default=200, ge=1)
    max_text: int = MAX_WEIGHTED

    @model_validator(mode="after")
    def _needs(self) -> "TwitterSettings":
        if self.enabled:
            missing = [k for k in ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
                       if getattr(self, k) is None]
            if missing:
                raise ValueError(f"{', '.join(missing)} required when the channel is enabled "
                                 "(the city account's user-context keys: replies and DMs need them)")
        return self


def _when(value: str | None, snowflake: str) -> datetime:
    """created_at, or the time encoded in the snowflake id when X did not send it."""
    if value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ParseError(f"created_at is not an ISO time: {value!r}") from None
    ms = (int(snowflake) >> 22) + TWITTER_EPOCH_MS
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def _media(item: dict[str, Any], includes: dict[str, Any]) -> list[Attachment]:
    keys = (item.get("attachments") or {}).get("media_keys") or []
    by_key = {m.get("media_key"): m for m in includes.get("media") or [] if isinstance(m, dict)}
    out = []
    for key in keys:
        m = by_key.get(key, {})
        kind = _MEDIA_KIND.get(m.get("type", ""), "other")
        ref = m.get("url") or m.get("preview_image_url") or str(key)
        out.append(Attachment(kind=kind, ref=ref, mime_type="image/jpeg" if kind == "photo" else None))
    return out


def _handle(user_id: str, includes: dict[str, Any]) -> str | None:
    for u in includes.get("users") or []:
        if isinstance(u, dict) and str(u.get("id")) == user_id and u.get("username"):
            return f"@{u['username']}"
    return None


def _envelope(kind: str, item: dict[str, Any], includes: dict[str, Any], user_key: str) -> dict[str, Any]:
    """The raw payload we keep: the provider's object plus only the includes that belong to it."""
    keys = set((item.get("attachments") or {}).get("media_keys") or [])
    refs = {r.get("id") for r in item.get("referenced_tweets") or []}
    inc = {"users": [u for u in includes.get("users") or [] if u.get("id") == item.get(user_key)],
           "media": [m for m in includes.get("media") or [] if m.get("media_key") in keys],
           "tweets": [t for t in includes.get("tweets") or [] if t.get("id") in refs]}
    return {kind: item, "includes": {k: v for k, v in inc.items() if v}}


class _Rebase(HTTPAdapter):
    """Sends tweepy's https://api.twitter.com/... requests to `base` (and bounds every request in time)."""

    def __init__(self, base: str, timeout: tuple[float, float] = (5.0, 30.0)):
        super().__init__()
        self.base, self.timeout = base.rstrip("/"), timeout

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def, override]
        parts = urlsplit(request.url)
        if self.base not in X_HOSTS:
            request.url = self.base + parts.path + (f"?{parts.query}" if parts.query else "")
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


class TwitterConnector(Connector):
    name: ClassVar[str] = "twitter"
    Settings = TwitterSettings
    settings: TwitterSettings
    polls: ClassVar[bool] = True

    @classmethod
    @strict_parse
    def parse(cls, raw: dict[str, Any]) -> InboundMessage | None:
        """{"mention": Tweet, "includes": ...} or {"dm_event": DmEvent, "includes": ...} -> InboundMessage.

        Retweets and non-message DM events (joins, leaves) carry nothing for the hub: None.
        """
        if not isinstance(raw, dict) or not ({"mention", "dm_event"} & raw.keys()):
            raise ParseError("not an X payload: expected a 'mention' (Tweet) or a 'dm_event' object")
        includes = raw.get("includes") or {}
        if not isinstance(includes, dict):
            raise ParseError("includes must be an object")
        if "mention" in raw:
            tweet = raw["mention"]
            if not isinstance(tweet, dict) or not str(tweet.get("id", "")).isdigit() or not tweet.get("author_id"):
                raise ParseError("a Tweet needs a numeric id and an author_id (request expansions=author_id)")
            refs = {r.get("type"): str(r.get("id")) for r in tweet.get("referenced_tweets") or []
                    if isinstance(r, dict)}
            if "retweeted" in refs:
                return None  # a retweet of someone's mention is not a new message
            author, tid = str(tweet["author_id"]), str(tweet["id"])
            coords = ((tweet.get("geo") or {}).get("coordinates") or {}).get("coordinates")
            return InboundMessage(
                channel="twitter", external_id=tid, sender=author, sender_display=_handle(author, includes),
                text=html.unescape(str(tweet.get("text") or "")), received_at=_when(tweet.get("created_at"), tid),
                attachments=_media(tweet, includes),
                location=GeoPoint(lon=coords[0], lat=coords[1]) if isinstance(coords, list) and len(coords) == 2 else None,
                in_reply_to=refs.get("replied_to"), public=True, raw=raw,
            )
        event = raw["dm_event"]
        if not isinstance(event, dict) or not str(event.get("id", "")).isdigit():
            raise ParseError("a DM event needs a numeric id")
        if event.get("event_type", "MessageCreate") != "MessageCreate":
            return None
        if not event.get("sender_id"):
            raise ParseError("a DM event needs sender_id (request dm_event.fields=sender_id)")
        sender, eid = str(event["sender_id"]), str(event["id"])
        return InboundMessage(
            channel="twitter", external_id=f"dm:{eid}", sender=sender, sender_display=_handle(sender, includes),
            text=html.unescape(str(event.get("text") or "")), received_at=_when(event.get("created_at"), eid),
            attachments=_media(event, includes), public=False, raw=raw,
        )

    # ------------------------------------------------------------ provider client

    def client(self):  # type: ignore[no-untyped-def]
        import tweepy

        s = self.settings
        sec = (lambda v: v.get_secret_value() if v is not None else None)
        client = tweepy.Client(bearer_token=sec(s.bearer_token), consumer_key=sec(s.consumer_key),
                               consumer_secret=sec(s.consumer_secret), access_token=sec(s.access_token),
                               access_token_secret=sec(s.access_token_secret), return_type=dict)
        adapter = _Rebase(s.api_base)
        for host in X_HOSTS:
            client.session.mount(host, adapter)
        return client

    def limits(self, out: Outgoing) -> list[tuple[str, int, float]]:
        """POST /2/tweets and DM sends have per-user 15-minute windows (values per the city's tier)."""
        if out.public and out.reply_to:
            return [("twitter:tweets", self.settings.tweets_per_15min, 900.0)]
        return [("twitter:dms", self.settings.dms_per_15min, 900.0)]

    def check(self) -> str:
        me = self._call(lambda: self.client().get_me(user_fields=USER_FIELDS))
        return f"@{me['data']['username']}; {Budget(self.settings).describe()}"

    def _call(self, fn: Callable[[], Any]) -> Any:
        """Run one tweepy call, translating its failures into the hub's two kinds."""
        import requests
        import tweepy

        try:
            return fn()
        except tweepy.TooManyRequests as exc:
            wait = max(1.0, exc.reset_time - time.time()) if exc.reset_time else None
            raise RetryableError(f"X rate limit (429), resets in {wait or '?'} s", retry_after=wait) from None
        except tweepy.TwitterServerError as exc:
            raise RetryableError(f"X server error: {exc}") from None
        except (tweepy.BadRequest, tweepy.Unauthorized, tweepy.Forbidden, tweepy.NotFound) as exc:
            raise PermanentError(f"X refused: {exc}".replace("\n", " "),
                                 code=str(exc.response.status_code)) from None
        except tweepy.HTTPException as exc:
            raise RetryableError(f"X error: {exc}") from None
        except requests.RequestException as exc:
            raise RetryableError(f"X unreachable: {exc.__class__.__name__}") from None

    # ------------------------------------------------------------ outbound

    def send(self, out: Outgoing) -> SendResult:
        client = self.client()
        if out.public and out.reply_to and out.reply_to.isdigit():
            return self._reply_public(client, out)
        parts = split_text(out.text, DM_MAX_TEXT)
        ids = [self._once(out.idempotency_key if len(parts) > 1 else "", f"dm{i}",
                          lambda p=p: self._dm(client, out.to, p)) for i, p in enumerate(parts)]
        return SendResult(provider_id=",".join(f"dm:{i}" for i in ids), parts=len(ids))

    def _dm(self, client, to: str, text: str) -> str:  # type: ignore[no-untyped-def]
        resp = self._call(lambda: client.create_direct_message(participant_id=to, text=text))
        return str(resp["data"]["dm_event_id"])

    def _reply_public(self, client, out: Outgoing) -> SendResult:  # type: ignore[no-untyped-def]
        """Reply tweet within 280 weighted characters and without personal data; the full answer by DM."""
        public_text = str((out.context.get("mention") or {}).get("text") or "")
        safe = redact(out.text, public_text=html.unescape(public_text))
        fits = weighted_length(safe) <= MAX_WEIGHTED
        dm_sent, dm_id = False, None
        if (safe != out.text or not fits) and self.settings.dm_long_replies:
            try:
                dm_id = self._once(out.idempotency_key, "dm", lambda: self._dm(client, out.to, out.text[:DM_MAX_TEXT]))
                dm_sent = True
            except PermanentError as exc:  # the citizen does not accept DMs: the status link must do
                log.info("full answer not sent by DM to %s: %s", out.to, exc)
        hint = "Jawaban lengkap kami kirim lewat DM." if dm_sent else ""
        if fits and weighted_length(f"{safe} {hint}".strip()) <= MAX_WEIGHTED:
            text = f"{safe} {hint}".strip()
        else:
            link = self._status_link(out.text)
            text = shorten(safe, " ".join(p for p in (hint, f"Selengkapnya: {link}" if link else "") if p))
        tid = self._once(out.idempotency_key, "tweet", lambda: str(self._call(
            lambda: client.create_tweet(text=text, in_reply_to_tweet_id=out.reply_to))["data"]["id"]))
        return SendResult(provider_id=tid + (f",dm:{dm_id}" if dm_id else ""), parts=2 if dm_sent else 1)

    @staticmethod
    def _status_link(text: str) -> str | None:
        """The public status page of the ticket the answer names (it shows no personal data)."""
        try:
            from core.config import get_config

            hub = get_config().hub
        except Exception:  # noqa: BLE001 - no configuration: no link
            return None
        m = re.search(rf"\b{re.escape(hub.ticket_prefix)}-\d{{4}}-\d{{6,}}\b", text)
        return f"{hub.public_url.rstrip('/')}/status/{m.group(0)}" if m else None

    @staticmethod
    def _once(key: str, step: str, fn: Callable[[], str]) -> str:
        """Run one step of a multi-step send once: a retry after a later step failed does not repeat it."""
        if not key:
            return fn()
        from core.redisconn import get_redis

        r = get_redis()
        rk = f"aduan:twitter:sent:{key}:{step}"
        done = r.get(rk)
        if done:
            return done.decode() if isinstance(done, bytes) else str(done)
        value = fn()
        r.set(rk, value, ex=14 * 86400)
        return value

    # ------------------------------------------------------------ inbound

    async def run(self, stop: asyncio.Event) -> None:
        """Poll mentions and DMs until `stop`, spacing polls by the read budget and honouring 429s."""
        client = self.client()
        me = self.settings.user_id or await asyncio.to_thread(self._me, client)
        while not stop.is_set():
            wait = await asyncio.to_thread(self.poll_once, client, me)
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait)
            except asyncio.TimeoutError:
                pass

    def _me(self, client) -> str:  # type: ignore[no-untyped-def]
        from core.cursors import load_cursor, save_cursor

        cached = load_cursor("twitter", "me")
        if cached:
            return cached
        me = str(self._call(lambda: client.get_me(user_fields=USER_FIELDS))["data"]["id"])
        save_cursor("twitter", "me", me)
        return me

    def poll_once(self, client, me: str) -> float:  # type: ignore[no-untyped-def]
        """One poll of mentions then DMs, if the budget and X's rate limit allow; returns seconds to wait."""
        budget = Budget(self.settings)
        delay = budget.delay()
        if delay > 0:
            return delay
        try:
            self._poll_mentions(client, me, budget)
            if self.settings.poll_dms:
                self._poll_dms(client, me, budget)
        except RetryableError as exc:
            budget.finish_poll(failed=True)
            if exc.retry_after:  # a 429: nothing moved past what is stored; resume after the reset
                budget.rate_limited(exc.retry_after)
                log.warning("X rate limit during poll; resuming in %.0f s", exc.retry_after)
                return exc.retry_after + 0.2
            log.warning("X poll failed: %s", exc)
            return min(self.settings.poll_interval, 30.0)
        except PermanentError as exc:  # bad keys or missing app permission: say so, keep trying slowly
            budget.finish_poll(failed=True)
            log.error("X refused the poll (check the keys and the app's read/DM permissions): %s", exc)
            return max(self.settings.poll_interval, 300.0)
        return budget.finish_poll()

    def _poll_mentions(self, client, me: str, budget: Budget) -> None:  # type: ignore[no-untyped-def]
        from core.cursors import load_cursor, save_cursor

        since = load_cursor("twitter", "mentions_since_id")
        params: dict[str, Any] = dict(expansions=["author_id", "attachments.media_keys", "referenced_tweets.id"],
                                      tweet_fields=TWEET_FIELDS, user_fields=USER_FIELDS, media_fields=MEDIA_FIELDS,
                                      max_results=self.settings.max_results, user_auth=self.settings.bearer_token is None)
        if since:
            params["since_id"] = since
        else:  # before the first mention: from a fixed start, so slow polls leave no gap
            params["start_time"] = self._first_start("mentions_from")
        found, newest, token = [], None, None
        while True:  # newest first; every page before the cursor moves
            resp = self._call(lambda: client.get_users_mentions(me, pagination_token=token, **params))
            data, meta = resp.get("data") or [], resp.get("meta") or {}
            budget.spend(len(data))
            newest = newest or meta.get("newest_id")
            found += [_envelope("mention", t, resp.get("includes") or {}, "author_id") for t in data]
            token = meta.get("next_token")
            if not token:
                break
        self._accept([e for e in found if str(e["mention"].get("author_id")) != me], "mention")
        if newest:
            save_cursor("twitter", "mentions_since_id", str(newest))

    def _poll_dms(self, client, me: str, budget: Budget) -> None:  # type: ignore[no-untyped-def]
        from core.cursors import load_cursor, save_cursor

        last = int(load_cursor("twitter", "dm_last_id") or 0)
        cutoff = self._first_start("dms_from") if not last else None
        found: list[dict[str, Any]] = []
        token = None
        while True:  # newest first, no since_id on this endpoint: page until we reach the cursor
            resp = self._call(lambda: client.get_direct_message_events(
                pagination_token=token, max_results=100, event_types="MessageCreate", dm_event_fields=DM_FIELDS,
                expansions=["sender_id", "attachments.media_keys"], user_fields=USER_FIELDS,
                media_fields=MEDIA_FIELDS))
            data, meta = resp.get("data") or [], resp.get("meta") or {}
            budget.spend(len(data))
            reached = False
            for ev in data:
                old = int(ev["id"]) <= last if cutoff is None else _when(ev.get("created_at"), ev["id"]) < cutoff
                if old:
                    reached = True
                else:
                    found.append(_envelope("dm_event", ev, resp.get("includes") or {}, "sender_id"))
            token = meta.get("next_token")
            if reached or not token:
                break
        self._accept([e for e in found if str(e["dm_event"].get("sender_id")) != me], "dm_event")
        if found:
            save_cursor("twitter", "dm_last_id", str(max(int(e["dm_event"]["id"]) for e in found)))

    def _first_start(self, key: str) -> datetime:
        """Where reading starts before any cursor exists: `backfill_hours` before the very first poll."""
        from core.cursors import load_cursor, save_cursor

        stored = load_cursor("twitter", key)
        if stored:
            return datetime.fromisoformat(stored)
        start = datetime.now(timezone.utc) - timedelta(hours=self.settings.backfill_hours)
        save_cursor("twitter", key, start.isoformat())
        return start

    def _accept(self, envelopes: list[dict[str, Any]], kind: str) -> None:
        """Store oldest first; a payload that does not parse is logged and skipped, never retried forever."""
        from core.intake import accept

        for env in sorted(envelopes, key=lambda e: int(e[kind]["id"])):
            try:
                msg = self.parse(env)
            except (ParseError, ValueError) as exc:
                log.warning("X %s %s skipped: %s", kind, env[kind].get("id"), exc)
                continue
            if msg is not None:
                accept(msg)
