"""A fake Instagram for tests and the sandbox: the web endpoints instaloader reads, and the Graph API.

Web (www.instagram.com and i.instagram.com, as instaloader 4.16 calls them; `rewrite_adapter`
points a requests session at this server, so the real instaloader builds and parses every call):
- GET  /                      start page: csrftoken cookie and the web app's tokens (LSD, DTSGInitialData,
                              IG_USER_EIMU) that instaloader scrapes for api/graphql queries;
- GET  /{username}/           profile page embedding `xig_user_by_username` in a <script type="application/json">;
- POST /graphql/query         doc_id 27937681195819736 (profile), 27128499623469141 (post metadata);
- GET  /graphql/query         query_hash 97b41c52301f77ce508f55e66d17620e (a post's comments, paginated),
                              e31a871f7301132ceaab56507a66bbb7 (posts the profile is tagged in);
- POST /api/graphql           doc_id 29104886249145907 (the profile's timeline);
- GET  /_i/api/v1/media/{id}/comments/   the iPhone endpoint instaloader uses for posts with many comments.
A session is valid when its `sessionid` cookie is in `state.sessions`; otherwise GraphQL answers with a
redirect to the login page, as Instagram does. `fail_next()` queues errors: 429, 400 "Please wait a few
minutes", 400 checkpoint_required.

Graph API (https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/ig-comment/replies):
- POST /graph/{version}/{ig-comment-id}/replies  (message, access_token) -> {"id": "..."}; errors
  {"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}.
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

WWW = "https://www.instagram.com"
IPHONE = "https://i.instagram.com"
COMMENTS_HASH = "97b41c52301f77ce508f55e66d17620e"
TAGGED_HASH = "e31a871f7301132ceaab56507a66bbb7"
PROFILE_DOC = "27937681195819736"
POST_DOC = "27128499623469141"
TIMELINE_DOC = "29104886249145907"
PAGE = 12


@dataclass
class InstagramState:
    username: str = "surabaya"
    user_pk: str = "1067259270"
    graph_token: str = "graph-token"
    sessions: set[str] = field(default_factory=lambda: {"fake-session-id"})
    posts: list[dict[str, Any]] = field(default_factory=list)  # the account's posts, newest first
    tagged: list[dict[str, Any]] = field(default_factory=list)  # other users' posts tagging the account
    comments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # shortcode -> comments, oldest first
    replies: list[dict[str, Any]] = field(default_factory=list)  # Graph API replies the hub posted
    images: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # path -> (bytes, content type)
    failures: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    graph_failures: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    url: str = ""  # this server's base URL, for image links
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(17_900_000_000_000_001))

    def add_post(self, caption: str, code: str | None = None) -> dict[str, Any]:
        """A new post on the city's account (newest first, as the timeline lists them)."""
        with self.lock:
            pk = str(next(self._ids))
            post = {"pk": pk, "code": code or f"C{pk[-9:]}", "caption": caption, "taken_at": int(time.time()),
                    "owner": {"pk": self.user_pk, "username": self.username}}
            self.posts.insert(0, post)
            self.comments[post["code"]] = []
        return post

    def add_tagged_post(self, username: str, caption: str, image: bytes | None = None,
                        content_type: str = "image/jpeg") -> dict[str, Any]:
        """A citizen's own post that tags the city's account (with a photo: the evidence)."""
        with self.lock:
            pk = str(next(self._ids))
            post = {"pk": pk, "code": f"T{pk[-9:]}", "caption": caption, "taken_at": int(time.time()),
                    "owner": {"pk": str(abs(hash(username)) % 10**10), "username": username}}
            if image is not None:
                self.images[f"media/{pk}.jpg"] = (image, content_type)
            post["image"] = f"media/{pk}.jpg" if image is not None else None
            self.tagged.insert(0, post)
            self.comments[post["code"]] = []
        return post

    def add_comment(self, shortcode: str, username: str, text: str, user_pk: str | None = None) -> dict[str, Any]:
        """A citizen comments on a post; the poller finds it on its next round."""
        with self.lock:
            comment = {"id": str(next(self._ids)), "text": text, "created_at": int(time.time()),
                       "owner": {"id": user_pk or str(abs(hash(username)) % 10**10), "username": username}}
            self.comments.setdefault(shortcode, []).append(comment)
        return comment

    def fail_next(self, status: int = 429, body: dict[str, Any] | None = None, times: int = 1) -> None:
        """Answer the next web requests with an error (429; or 400 with a message such as checkpoint_required)."""
        body = body or {"message": "Please wait a few minutes before you try again.", "status": "fail"}
        self.failures.extend([(status, body)] * times)

    def graph_fail_next(self, status: int, code: int, message: str, type_: str = "OAuthException",
                        subcode: int | None = None) -> None:
        self.graph_failures.append((status, {"error": {"message": message, "type": type_, "code": code,
                                                       "error_subcode": subcode, "fbtrace_id": secrets.token_hex(8)}}))

    def replies_to(self, comment_id: str) -> list[dict[str, Any]]:
        return [r for r in self.replies if r["parent_id"] == str(comment_id)]


def rewrite_adapter(base_url: str) -> requests.adapters.HTTPAdapter:
    """A requests transport adapter sending https://www.instagram.com/... and https://i.instagram.com/...
    to this fake, as a hosts-file entry would; cookies and redirects keep their Instagram URLs."""
    base = base_url.rstrip("/")

    class _Rewrite(requests.adapters.HTTPAdapter):
        def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
            original = request.url or ""
            target = request.copy()
            if original.startswith(WWW + "/") or original == WWW:
                target.url = base + original[len(WWW):]
            elif original.startswith(IPHONE + "/"):
                target.url = base + "/_i" + original[len(IPHONE):]
            target.headers.pop("Host", None)
            resp = super().send(target, **kwargs)
            resp.url, resp.request = original, request
            return resp

    return _Rewrite()


# ------------------------------------------------------------------ JSON shapes instaloader reads


def _user(state: InstagramState) -> dict[str, Any]:
    return {"pk": state.user_pk, "id": state.user_pk, "username": state.username, "full_name": "Pemerintah Kota",
            "is_private": False, "is_verified": True, "profile_pic_url": f"{state.url}/static/pp.jpg",
            "media_count": len(state.posts), "follower_count": 120000, "following_count": 10,
            "friendship_status": {"following": True, "followed_by": False, "blocking": False}}


def _media(state: InstagramState, post: dict[str, Any]) -> dict[str, Any]:
    """A post as the web app's GraphQL returns it (the "iPhone struct")."""
    image = post.get("image")
    url = f"{state.url}/{image}" if image else f"{state.url}/static/{post['code']}.jpg"
    owner = post["owner"]
    return {"pk": post["pk"], "id": f"{post['pk']}_{owner['pk']}", "code": post["code"], "media_type": 1,
            "taken_at": post["taken_at"], "caption": {"text": post["caption"]}, "has_liked": False,
            "like_count": 3, "comment_count": len(state.comments.get(post["code"], [])),
            "image_versions2": {"candidates": [{"url": url, "width": 1080, "height": 1080}]},
            "user": {"pk": owner["pk"], "username": owner["username"], "is_private": False,
                     "full_name": owner["username"], "profile_pic_url": f"{state.url}/static/pp.jpg"}}


def _comment_node(c: dict[str, Any]) -> dict[str, Any]:
    return {"id": c["id"], "created_at": c["created_at"], "text": c["text"],
            "owner": {"id": c["owner"]["id"], "username": c["owner"]["username"], "is_verified": False,
                      "profile_pic_url": ""},
            "edge_liked_by": {"count": 0}, "did_report_as_spam": False,
            "edge_threaded_comments": {"count": 0, "page_info": {"has_next_page": False, "end_cursor": None},
                                       "edges": []}}


def _find(state: InstagramState, shortcode: str) -> dict[str, Any] | None:
    return next((p for p in state.posts + state.tagged if p["code"] == shortcode), None)


def _page(items: list[Any], after: str | None) -> tuple[list[Any], dict[str, Any]]:
    start = int(after) if after else 0
    chunk = items[start:start + PAGE]
    more = start + PAGE < len(items)
    return chunk, {"has_next_page": more, "end_cursor": str(start + PAGE) if more else None}


def _start_page(state: InstagramState) -> str:
    return ('<!DOCTYPE html><html><head><title>Instagram</title></head><body><script>'
            f'["DTSGInitialData",[],{{"token":"dtsg-{state.user_pk}"}},258],'
            f'["LSD",[],{{"token":"lsd-{state.user_pk}"}},323],{{"IG_USER_EIMU":"{state.user_pk}"}}'
            '</script></body></html>')


def _profile_page(state: InstagramState) -> str:
    user = dict(_user(state), id="profilepage_" + state.user_pk)
    edges = [{"node": {"code": p["code"], "pk": p["pk"]}} for p in state.posts[:PAGE]]
    user["polaris_ordered_timeline_connection"] = {"edges": edges, "page_info": {"has_next_page": False}}
    data = {"require": [["ScheduledServerJS", "handle", None,
                         [{"__bbox": {"result": {"data": {"xig_user_by_username": user}}}}]]]}
    return (f'<html><body><script type="application/json" data-sjs>{json.dumps(data)}</script>'
            '</body></html>')


def _login_redirect() -> Response:
    return Response(status_code=302, headers={"location": f"{WWW}/accounts/login/?next=%2F"})


def create_app(state: InstagramState) -> FastAPI:
    """The fake www/i.instagram.com plus the Graph API under /graph/{version}."""
    app = FastAPI()

    def logged_in(request: Request) -> bool:
        return request.cookies.get("sessionid", "") in state.sessions or \
            (request.headers.get("authorization", "").startswith("Bearer IGT:2:"))

    def failure() -> Response | None:
        with state.lock:
            if not state.failures:
                return None
            status, body = state.failures.pop(0)
        return JSONResponse(body, status_code=status)

    @app.post("/graph/{version}/{comment_id}/replies")
    async def graph_reply(version: str, comment_id: str, request: Request) -> JSONResponse:
        params = dict(request.query_params)
        if "form" in request.headers.get("content-type", ""):
            params.update({k: str(v) for k, v in (await request.form()).items()})
        token = params.get("access_token") or request.headers.get("authorization", "").removeprefix("Bearer ")
        if state.graph_failures:
            status, body = state.graph_failures.pop(0)
            return JSONResponse(body, status_code=status)
        if token != state.graph_token:
            return JSONResponse({"error": {"message": "Invalid OAuth access token - Cannot parse access token",
                                           "type": "OAuthException", "code": 190, "fbtrace_id": secrets.token_hex(8)}},
                                status_code=400)
        known = any(c["id"] == comment_id for cs in state.comments.values() for c in cs)
        if not known:
            return JSONResponse({"error": {"message": f"Unsupported post request. Object with ID '{comment_id}' does "
                                           "not exist, cannot be loaded due to missing permissions, or does not "
                                           "support this operation", "type": "GraphMethodException", "code": 100,
                                           "error_subcode": 33, "fbtrace_id": secrets.token_hex(8)}}, status_code=400)
        message = params.get("message", "")
        if not message:
            return JSONResponse({"error": {"message": "(#100) The parameter message is required",
                                           "type": "OAuthException", "code": 100, "fbtrace_id": secrets.token_hex(8)}},
                                status_code=400)
        reply = {"id": str(next(state._ids)), "parent_id": comment_id, "message": message, "at": int(time.time())}
        state.replies.append(reply)
        return JSONResponse({"id": reply["id"]})

    @app.get("/")
    async def start(request: Request) -> Response:
        state.calls.append("GET /")
        resp = HTMLResponse(_start_page(state))
        if not request.cookies.get("csrftoken"):
            resp.set_cookie("csrftoken", secrets.token_hex(16), domain=".instagram.com", path="/")
        return resp

    @app.get("/media/{name}")
    async def image(name: str) -> Response:
        item = state.images.get(f"media/{name}")
        if item is None:
            return Response(status_code=404)
        return Response(item[0], media_type=item[1])

    @app.api_route("/graphql/query", methods=["GET", "POST"])
    @app.api_route("/graphql/query/", methods=["GET", "POST"])
    async def graphql(request: Request) -> Response:
        params = dict(request.query_params)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.form()).items()})
        key = params.get("doc_id") or params.get("query_hash") or "?"
        state.calls.append(f"graphql {key}")
        if (err := failure()) is not None:
            return err
        if not logged_in(request):
            return _login_redirect()
        variables = json.loads(params.get("variables") or "{}")
        if key == PROFILE_DOC:
            return JSONResponse({"data": {"user": _user(state)}, "status": "ok"})
        if key == POST_DOC:
            post = _find(state, variables.get("shortcode", ""))
            items = [_media(state, post)] if post else []
            return JSONResponse({"data": {"xdt_api__v1__media__shortcode__web_info": {"items": items}}, "status": "ok"})
        if key == COMMENTS_HASH:
            comments = state.comments.get(variables.get("shortcode", ""))
            if comments is None:
                return JSONResponse({"data": {"shortcode_media": None}, "status": "ok"})
            chunk, info = _page(list(comments), variables.get("after"))
            return JSONResponse({"data": {"shortcode_media": {"edge_media_to_parent_comment": {
                "count": len(comments), "page_info": info, "edges": [{"node": _comment_node(c)} for c in chunk]}}},
                "status": "ok"})
        if key == TAGGED_HASH:
            chunk, info = _page(list(state.tagged), variables.get("after"))
            nodes = [{"node": {"__typename": "GraphImage", "id": p["pk"], "shortcode": p["code"],
                               "display_url": _media(state, p)["image_versions2"]["candidates"][0]["url"],
                               "is_video": False, "taken_at_timestamp": p["taken_at"],
                               "edge_media_to_caption": {"edges": [{"node": {"text": p["caption"]}}]},
                               "edge_media_to_comment": {"count": len(state.comments.get(p["code"], []))},
                               "owner": {"id": p["owner"]["pk"], "username": p["owner"]["username"]}}} for p in chunk]
            return JSONResponse({"data": {"user": {"edge_user_to_photos_of_you": {
                "count": len(state.tagged), "page_info": info, "edges": nodes}}}, "status": "ok"})
        return JSONResponse({"message": "execution error", "status": "fail"}, status_code=400)

    @app.post("/api/graphql")
    @app.post("/api/graphql/")
    async def web_graphql(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        state.calls.append(f"api/graphql {form.get('doc_id')}")
        if (err := failure()) is not None:
            return err
        if form.get("doc_id") != TIMELINE_DOC or form.get("lsd") != f"lsd-{state.user_pk}":
            return JSONResponse({"errors": [{"message": "execution error"}]}, status_code=400)
        if not logged_in(request):
            return _login_redirect()
        variables = json.loads(form.get("variables") or "{}")
        chunk, info = _page(list(state.posts), variables.get("after"))
        return JSONResponse({"data": {"xdt_api__v1__feed__user_timeline_graphql_connection": {
            "edges": [{"node": _media(state, p), "cursor": p["pk"]} for p in chunk], "page_info": info}}})

    @app.get("/_i/api/v1/media/{mediaid}/comments/")
    async def iphone_comments(mediaid: str, request: Request) -> Response:
        state.calls.append("iphone comments")
        if (err := failure()) is not None:
            return err
        if not logged_in(request):
            return JSONResponse({"message": "login_required", "status": "fail"}, status_code=403)
        post = next((p for p in state.posts + state.tagged if p["pk"] == mediaid), None)
        comments = state.comments.get(post["code"], []) if post else []
        start = int(request.query_params.get("min_id") or 0)
        chunk = comments[start:start + 20]
        nxt = str(start + 20) if start + 20 < len(comments) else None
        return JSONResponse({"comments": [{
            "pk": c["id"], "created_at": c["created_at"], "text": c["text"], "comment_like_count": 0,
            "child_comment_count": 0, "preview_child_comments": [],
            "user": {"pk": c["owner"]["id"], "username": c["owner"]["username"], "is_private": False,
                     "full_name": c["owner"]["username"], "profile_pic_url": ""}} for c in chunk],
            "next_min_id": nxt, "comment_count": len(comments), "status": "ok"})

    @app.get("/{username}/")
    async def profile(username: str) -> Response:
        state.calls.append(f"GET /{username}/")
        if (err := failure()) is not None:
            return err
        if username.lower() != state.username.lower():
            return HTMLResponse("<html><body>Sorry, this page isn't available.</body></html>", status_code=404)
        return HTMLResponse(_profile_page(state))

    return app
