"""A fake Telegram Bot API (https://core.telegram.org/bots/api) for tests and the sandbox.

Methods: getMe, getUpdates (long polling), setWebhook/deleteWebhook/getWebhookInfo, sendMessage,
getFile and file downloads. Answers use the documented envelope {"ok": true, "result": ...} and
errors {"ok": false, "error_code": N, "description": "...", "parameters": {"retry_after": s}}.
Parameters are read from the query string, a form body or a JSON body, as the real API does.
When a webhook is set, `deliver()` POSTs updates to it with the secret-token header, like Telegram.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

BOT_USER = {"id": 7000000001, "is_bot": True, "first_name": "Aduan Kota", "username": "AduanKotaBot"}


@dataclass
class TelegramState:
    token: str
    updates: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    webhook: dict[str, Any] = field(default_factory=dict)
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    failures: list[tuple[int, str, int | None]] = field(default_factory=list)  # (status, description, retry_after)
    blocked_chats: set[int] = field(default_factory=set)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _update_ids: itertools.count = field(default_factory=lambda: itertools.count(100000))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def citizen_update(self, chat_id: int, text: str = "", first_name: str = "Warga", **extra: Any) -> dict:
        """Build (and queue for getUpdates) a private-chat message update as Telegram would send it."""
        with self.lock:
            mid = next(self._ids)
            update = {"update_id": next(self._update_ids), "message": {
                "message_id": mid, "date": int(time.time()),
                "from": {"id": chat_id, "is_bot": False, "first_name": first_name, "language_code": "id"},
                "chat": {"id": chat_id, "type": "private", "first_name": first_name}, **extra}}
            if text:
                update["message"]["text"] = text
            self.updates.append(update)
        return update

    def fail_next(self, status: int = 429, description: str = "Too Many Requests: retry after 1",
                  retry_after: int | None = 1, times: int = 1) -> None:
        self.failures.extend([(status, description, retry_after)] * times)

    def messages_to(self, chat_id: int) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["chat"]["id"] == chat_id]

    def deliver(self, update: dict[str, Any], timeout: float = 10) -> httpx.Response:
        """Push one update to the registered webhook, with the secret token header."""
        headers = {}
        if self.webhook.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = self.webhook["secret_token"]
        return httpx.post(self.webhook["url"], json=update, headers=headers, timeout=timeout)


def _ok(result: Any) -> JSONResponse:
    return JSONResponse({"ok": True, "result": result})


def _err(status: int, description: str, retry_after: int | None = None) -> JSONResponse:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return JSONResponse(body, status_code=status)


async def _params(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query_params)
    ctype = request.headers.get("content-type", "")
    if "json" in ctype:
        body = await request.body()
        params.update(json.loads(body) if body else {})
    elif "form" in ctype:
        form = await request.form()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    for k, v in list(params.items()):
        if isinstance(v, str) and v[:1] in "[{":
            try:
                params[k] = json.loads(v)
            except ValueError:
                pass
    return params


def create_app(state: TelegramState) -> FastAPI:
    app = FastAPI()

    @app.api_route("/bot{token}/{method}", methods=["GET", "POST"])
    async def method(token: str, method: str, request: Request) -> Response:
        if token != state.token:
            return _err(401, "Unauthorized")
        p = await _params(request)
        handler = HANDLERS.get(method.lower())
        if handler is None:
            return _err(404, "Not Found: method not found")
        if state.failures and method.lower() == "sendmessage":
            return _err(*state.failures.pop(0))
        return await handler(state, p)

    @app.get("/file/bot{token}/{path:path}")
    async def file(token: str, path: str) -> Response:
        if token != state.token or path not in state.files:
            return Response(status_code=404)
        data, mime = state.files[path]
        return Response(data, media_type=mime)

    return app


async def _get_me(state: TelegramState, p: dict) -> JSONResponse:
    return _ok(BOT_USER)


async def _get_updates(state: TelegramState, p: dict) -> JSONResponse:
    if state.webhook.get("url"):
        return _err(409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first")
    offset = int(p.get("offset") or 0)
    deadline = time.monotonic() + min(float(p.get("timeout") or 0), 2.0)
    while True:
        with state.lock:
            state.updates = [u for u in state.updates if u["update_id"] >= offset]
            ready = state.updates[: int(p.get("limit") or 100)]
        if ready or time.monotonic() >= deadline:
            return _ok(ready)
        await asyncio.sleep(0.05)


async def _set_webhook(state: TelegramState, p: dict) -> JSONResponse:
    state.webhook = {"url": p.get("url", ""), "secret_token": p.get("secret_token")}
    return _ok(True)


async def _delete_webhook(state: TelegramState, p: dict) -> JSONResponse:
    state.webhook = {}
    return _ok(True)


async def _webhook_info(state: TelegramState, p: dict) -> JSONResponse:
    return _ok({"url": state.webhook.get("url", ""), "has_custom_certificate": False, "pending_update_count": 0})


async def _send_message(state: TelegramState, p: dict) -> JSONResponse:
    try:
        chat_id = int(p["chat_id"])
    except (KeyError, ValueError):
        return _err(400, "Bad Request: chat not found")
    text = p.get("text", "")
    if not text:
        return _err(400, "Bad Request: message text is empty")
    if len(text) > 4096:
        return _err(400, "Bad Request: message is too long")
    if chat_id in state.blocked_chats:
        return _err(403, "Forbidden: bot was blocked by the user")
    msg = {"message_id": next(state._ids), "date": int(time.time()), "from": BOT_USER,
           "chat": {"id": chat_id, "type": "private"}, "text": text}
    reply = p.get("reply_parameters") or ({"message_id": int(p["reply_to_message_id"])} if p.get("reply_to_message_id") else None)
    if reply:
        msg["reply_to_message"] = {"message_id": int(reply["message_id"]), "date": msg["date"], "chat": msg["chat"]}
    state.sent.append(msg)
    return _ok(msg)


async def _get_file(state: TelegramState, p: dict) -> JSONResponse:
    fid = p.get("file_id", "")
    path = f"photos/{fid}.jpg"
    if path not in state.files:
        return _err(400, "Bad Request: invalid file_id")
    return _ok({"file_id": fid, "file_unique_id": fid[-8:], "file_size": len(state.files[path][0]), "file_path": path})


HANDLERS = {"getme": _get_me, "getupdates": _get_updates, "setwebhook": _set_webhook,
            "deletewebhook": _delete_webhook, "getwebhookinfo": _webhook_info,
            "sendmessage": _send_message, "getfile": _get_file}
