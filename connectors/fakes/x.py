"""A fake X API v2 (https://docs.x.com/x-api) for tests and the sandbox.

Endpoints the connector uses, as tweepy calls them: GET /2/users/me, GET /2/users/:id/mentions
(since_id, start_time, max_results 5-100, pagination_token, expansions author_id /
attachments.media_keys / referenced_tweets.id, tweet/user/media fields), GET /2/dm_events
(and the per-conversation variants), POST /2/tweets (reply.in_reply_to_tweet_id) and
POST /2/dm_conversations/with/:participant_id/messages. Responses have the documented shapes
{"data", "includes": {"users", "media", "tweets"}, "meta": {"result_count", "newest_id",
"oldest_id", "next_token"}}; errors are problem objects {"title", "detail", "type", "status"};
every answer carries x-rate-limit-limit / -remaining / -reset, and a 429 is injectable.
OAuth 1.0a signatures are verified against https://api.twitter.com, as X would see them.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

EPOCH_MS = 1288834974657
SIGNED_HOST = "https://api.twitter.com"
ME = {"id": "1600000000000000001", "name": "Pemkot Surabaya", "username": "SapawargaSby"}
TWEET_DEFAULT = ("id", "text", "edit_history_tweet_ids")


def weighted(text: str) -> int:
    """X's count, independently of the hub's: URL 23, weight-1 ranges per twitter-text v3, else 2."""
    text = unicodedata.normalize("NFC", text)
    text = re.sub(r"https?://\S+", "\x00", text)
    ones = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
    return sum(23 if c == "\x00" else 1 if any(a <= ord(c) <= b for a, b in ones) else 2 for c in text)


@dataclass
class XState:
    bearer_token: str = "bearer-test"
    consumer_key: str = "ck-test"
    consumer_secret: str = "cs-test"
    access_token: str = "1600000000000000001-at"
    access_token_secret: str = "ats-test"
    me: dict[str, Any] = field(default_factory=lambda: dict(ME))
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    tweets: list[dict[str, Any]] = field(default_factory=list)  # every tweet, citizens' and ours
    dm_events: list[dict[str, Any]] = field(default_factory=list)
    media: dict[str, dict[str, Any]] = field(default_factory=dict)
    posted: list[dict[str, Any]] = field(default_factory=list)  # POST /2/tweets bodies accepted
    dms_sent: list[dict[str, Any]] = field(default_factory=list)
    dm_closed: set[str] = field(default_factory=set)  # users who do not accept DMs from the city
    failures: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)  # log: method, path, params, at
    last_reset: int | None = None  # x-rate-limit-reset of the last injected 429
    page_size: int | None = None  # force smaller pages than max_results, to exercise pagination
    lock: threading.Lock = field(default_factory=threading.Lock)
    _last_id: int = 0
    _seq: itertools.count = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.users[self.me["id"]] = self.me

    def next_id(self) -> str:
        with self.lock:
            self._last_id = max(self._last_id + 1, (int(time.time() * 1000) - EPOCH_MS) << 22)
            return str(self._last_id)

    def user(self, user_id: str, username: str, name: str | None = None) -> dict[str, Any]:
        self.users[user_id] = {"id": user_id, "name": name or username, "username": username}
        return self.users[user_id]

    def mention(self, author_id: str, text: str, in_reply_to: str | None = None,
                photos: list[str] = (), retweet_of: str | None = None) -> dict[str, Any]:
        """A citizen's tweet mentioning the city account, as X stores it."""
        tid = self.next_id()
        tweet: dict[str, Any] = {"id": tid, "text": text, "edit_history_tweet_ids": [tid], "author_id": author_id,
                                 "created_at": _iso(), "conversation_id": tid, "lang": "in"}
        refs = []
        if in_reply_to:
            parent = next((t for t in self.tweets if t["id"] == in_reply_to), None)
            tweet["conversation_id"] = parent["conversation_id"] if parent else in_reply_to
            tweet["in_reply_to_user_id"] = parent["author_id"] if parent else self.me["id"]
            refs.append({"type": "replied_to", "id": in_reply_to})
        if retweet_of:
            refs.append({"type": "retweeted", "id": retweet_of})
        if refs:
            tweet["referenced_tweets"] = refs
        keys = []
        for url in photos:
            key = f"3_{self.next_id()}"
            self.media[key] = {"media_key": key, "type": "photo", "url": url, "width": 1200, "height": 900}
            keys.append(key)
        if keys:
            tweet["attachments"] = {"media_keys": keys}
        tweet["_mentions_me"] = True
        self.tweets.append(tweet)
        return _public(tweet)

    def dm(self, sender_id: str, text: str) -> dict[str, Any]:
        """A DM from a citizen to the city account."""
        pair = sorted([sender_id, self.me["id"]], key=int)
        ev = {"id": self.next_id(), "event_type": "MessageCreate", "text": text, "sender_id": sender_id,
              "created_at": _iso(), "dm_conversation_id": f"{pair[0]}-{pair[1]}",
              "participant_ids": pair}
        self.dm_events.append(ev)
        return ev

    def fail_next(self, status: int = 429, path: str = "", method: str = "", times: int = 1,
                  reset_in: float = 1.0, detail: str | None = None, skip: int = 0) -> None:
        """After `skip` matching requests, the next `times` fail with `status`
        (a 429 carries x-rate-limit-reset `reset_in` seconds ahead, recorded in `last_reset`)."""
        for _ in range(times):
            self.failures.append({"status": status, "path": path, "method": method, "reset_in": reset_in,
                                  "detail": detail, "skip": skip})

    def replies_to(self, tweet_id: str) -> list[dict[str, Any]]:
        return [p for p in self.posted if (p.get("reply") or {}).get("in_reply_to_tweet_id") == tweet_id]

    def dms_to(self, user_id: str) -> list[dict[str, Any]]:
        return [d for d in self.dms_sent if d["participant_id"] == user_id]

    def calls(self, path_part: str, method: str = "GET") -> list[dict[str, Any]]:
        return [r for r in self.requests if path_part in r["path"] and r["method"] == method]


def _iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def _problem(status: int, title: str, detail: str, type_: str = "about:blank", headers: dict | None = None,
             errors: list | None = None) -> JSONResponse:
    body: dict[str, Any] = {"title": title, "detail": detail, "type": type_, "status": status}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers)


def _fields(obj: dict[str, Any], requested: str | None, default: tuple[str, ...]) -> dict[str, Any]:
    keep = set(default) | set(filter(None, (requested or "").split(",")))
    return {k: v for k, v in _public(obj).items() if k in keep}


def _check_oauth1(state: XState, request: Request) -> bool:
    """Verify the OAuth 1.0a HMAC-SHA1 signature tweepy computed for the real host."""
    from oauthlib.oauth1.rfc5849 import signature

    header = request.headers.get("authorization", "")
    params = dict(re.findall(r'(\w+)="([^"]*)"', header))
    if params.get("oauth_consumer_key") != state.consumer_key or params.get("oauth_token") != state.access_token:
        return False
    collected = signature.collect_parameters(uri_query=request.url.query, headers={"Authorization": header},
                                             exclude_oauth_signature=True)
    base = signature.signature_base_string(request.method, signature.base_string_uri(SIGNED_HOST + request.url.path),
                                           signature.normalize_parameters(collected))
    expected = signature.sign_hmac_sha1(base, state.consumer_secret, state.access_token_secret)
    return unquote(params.get("oauth_signature", "")) == expected


def create_app(state: XState) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def gate(request: Request, call_next):  # type: ignore[no-untyped-def]
        path = request.url.path
        state.requests.append({"method": request.method, "path": path, "params": dict(request.query_params),
                               "at": time.time()})
        reset = int(time.time()) + 900
        headers = {"x-rate-limit-limit": "180", "x-rate-limit-remaining": "179", "x-rate-limit-reset": str(reset)}
        for i, f in enumerate(state.failures):
            if f["path"] in path and (not f["method"] or f["method"] == request.method):
                if f["skip"] > 0:
                    f["skip"] -= 1
                    break
                state.failures.pop(i)
                if f["status"] == 429:
                    reset_at = state.last_reset = int(time.time() + f["reset_in"] + 0.999)
                    return _problem(429, "Too Many Requests", f["detail"] or "Too Many Requests",
                                    headers={"x-rate-limit-limit": "180", "x-rate-limit-remaining": "0",
                                             "x-rate-limit-reset": str(reset_at)})
                titles = {500: "Internal Server Error", 503: "Service Unavailable", 403: "Forbidden"}
                return _problem(f["status"], titles.get(f["status"], "Error"), f["detail"] or "Injected failure",
                                headers=headers)
        auth = request.headers.get("authorization", "")
        user_context = auth.startswith("OAuth ")
        if user_context and not _check_oauth1(state, request):
            return _problem(401, "Unauthorized", "Unauthorized", headers=headers)
        if not user_context and auth != f"Bearer {state.bearer_token}":
            return _problem(401, "Unauthorized", "Unauthorized", headers=headers)
        needs_user = not re.fullmatch(r"/2/users/\d+/mentions", path)
        if needs_user and not user_context:
            return _problem(403, "Unsupported Authentication",
                            "Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.  "
                            "Supported authentication types are [OAuth 1.0a User Context, OAuth 2.0 User Context].",
                            "https://api.twitter.com/2/problems/unsupported-authentication", headers=headers)
        response = await call_next(request)
        for k, v in headers.items():
            response.headers[k] = v
        return response

    @app.get("/2/users/me")
    def users_me(request: Request) -> JSONResponse:
        return JSONResponse({"data": _fields(state.me, request.query_params.get("user.fields"), ("id", "name", "username"))})

    @app.get("/2/users/{user_id}/mentions")
    def mentions(user_id: str, request: Request) -> JSONResponse:
        q = request.query_params
        try:
            max_results = int(q.get("max_results", 10))
        except ValueError:
            max_results = -1
        if not 5 <= max_results <= 100:
            return _problem(400, "Invalid Request", "One or more parameters to your request was invalid.",
                            "https://api.twitter.com/2/problems/invalid-request",
                            errors=[{"parameters": {"max_results": [q.get("max_results")]},
                                     "message": f"The `max_results` query parameter value [{q.get('max_results')}] "
                                                "is not between 5 and 100"}])
        items = [t for t in state.tweets if t.get("_mentions_me") and user_id == state.me["id"]]
        if q.get("since_id"):
            items = [t for t in items if int(t["id"]) > int(q["since_id"])]
        if q.get("start_time"):
            start = datetime.fromisoformat(q["start_time"].replace("Z", "+00:00"))
            items = [t for t in items if datetime.fromisoformat(t["created_at"].replace("Z", "+00:00")) >= start]
        items.sort(key=lambda t: int(t["id"]), reverse=True)
        if q.get("pagination_token"):
            below = int(q["pagination_token"], 16)
            items = [t for t in items if int(t["id"]) < below]
        size = min(max_results, state.page_size or max_results)
        page, more = items[:size], len(items) > size
        return JSONResponse(_page(state, page, more, q, "author_id", q.get("tweet.fields"), TWEET_DEFAULT))

    @app.get("/2/dm_events")
    @app.get("/2/dm_conversations/with/{participant_id}/dm_events")
    @app.get("/2/dm_conversations/{conversation_id}/dm_events")
    def dm_events(request: Request, participant_id: str | None = None, conversation_id: str | None = None) -> JSONResponse:
        q = request.query_params
        items = list(state.dm_events)
        if participant_id:
            items = [e for e in items if participant_id in e["participant_ids"]]
        if conversation_id:
            items = [e for e in items if e["dm_conversation_id"] == conversation_id]
        types = set((q.get("event_types") or "MessageCreate,ParticipantsJoin,ParticipantsLeave").split(","))
        items = sorted((e for e in items if e["event_type"] in types), key=lambda e: int(e["id"]), reverse=True)
        if q.get("pagination_token"):
            below = int(q["pagination_token"], 16)
            items = [e for e in items if int(e["id"]) < below]
        size = min(int(q.get("max_results", 100)), state.page_size or 100)
        page, more = items[:size], len(items) > size
        return JSONResponse(_page(state, page, more, q, "sender_id", q.get("dm_event.fields"),
                                  ("id", "event_type", "text")))

    @app.post("/2/tweets")
    async def create_tweet(request: Request) -> JSONResponse:
        body = await request.json()
        text = body.get("text") or ""
        if not text:
            return _problem(400, "Invalid Request", "One or more parameters to your request was invalid.",
                            "https://api.twitter.com/2/problems/invalid-request")
        if weighted(text) > 280:
            return _problem(400, "Invalid Request", "Your Tweet text is too long.",
                            "https://api.twitter.com/2/problems/invalid-request")
        parent_id = (body.get("reply") or {}).get("in_reply_to_tweet_id")
        parent = next((t for t in state.tweets if t["id"] == parent_id), None) if parent_id else None
        if parent_id and parent is None:
            return _problem(403, "Forbidden", "You attempted to reply to a Tweet that is deleted or not visible to you.")
        if any(p["text"] == text for p in state.posted):
            return _problem(403, "Forbidden", "You are not allowed to create a Tweet with duplicate content.")
        tid = state.next_id()
        tweet = {"id": tid, "text": text, "edit_history_tweet_ids": [tid], "author_id": state.me["id"],
                 "created_at": _iso(), "conversation_id": parent["conversation_id"] if parent else tid}
        if parent:
            tweet["referenced_tweets"] = [{"type": "replied_to", "id": parent_id}]
            tweet["in_reply_to_user_id"] = parent["author_id"]
        state.tweets.append(tweet)
        state.posted.append({**body, "id": tid, "weighted": weighted(text)})
        return JSONResponse({"data": {"id": tid, "text": text, "edit_history_tweet_ids": [tid]}}, status_code=201)

    @app.post("/2/dm_conversations/with/{participant_id}/messages")
    async def send_dm(participant_id: str, request: Request) -> JSONResponse:
        body = await request.json()
        text = body.get("text") or ""
        if not text or len(text) > 10_000:
            return _problem(400, "Invalid Request", "One or more parameters to your request was invalid.",
                            "https://api.twitter.com/2/problems/invalid-request")
        if participant_id in state.dm_closed or participant_id not in state.users:
            return _problem(403, "Forbidden", "You cannot send messages to this user.",
                            "https://api.twitter.com/2/problems/dm-not-allowed")
        pair = sorted([participant_id, state.me["id"]], key=int)
        ev = {"id": state.next_id(), "event_type": "MessageCreate", "text": text, "sender_id": state.me["id"],
              "created_at": _iso(), "dm_conversation_id": f"{pair[0]}-{pair[1]}", "participant_ids": pair}
        state.dm_events.append(ev)
        state.dms_sent.append({"participant_id": participant_id, "text": text, "id": ev["id"]})
        return JSONResponse({"data": {"dm_conversation_id": ev["dm_conversation_id"], "dm_event_id": ev["id"]}},
                            status_code=201)

    return app


def _page(state: XState, page: list[dict[str, Any]], more: bool, q: Any, user_key: str,
          fields: str | None, default: tuple[str, ...]) -> dict[str, Any]:
    expansions = set(filter(None, (q.get("expansions") or "").split(",")))
    body: dict[str, Any] = {"meta": {"result_count": len(page)}}
    if not page:
        return body
    body["data"] = [_fields(o, fields, default) for o in page]
    body["meta"].update(newest_id=page[0]["id"], oldest_id=page[-1]["id"])
    if more:
        body["meta"]["next_token"] = format(int(page[-1]["id"]), "x")
    includes: dict[str, list] = {}
    if user_key in expansions:
        ids = dict.fromkeys(o[user_key] for o in page if o.get(user_key) in state.users)
        includes["users"] = [_fields(state.users[i], q.get("user.fields"), ("id", "name", "username")) for i in ids]
    if "attachments.media_keys" in expansions:
        keys = [k for o in page for k in (o.get("attachments") or {}).get("media_keys", []) if k in state.media]
        if keys:
            includes["media"] = [_fields(state.media[k], q.get("media.fields"), ("media_key", "type")) for k in keys]
    if "referenced_tweets.id" in expansions:
        refs = {r["id"] for o in page for r in o.get("referenced_tweets") or []}
        found = [_fields(t, q.get("tweet.fields"), TWEET_DEFAULT) for t in state.tweets if t["id"] in refs]
        if found:
            includes["tweets"] = found
    if includes:
        body["includes"] = {k: v for k, v in includes.items() if v}
    return body
