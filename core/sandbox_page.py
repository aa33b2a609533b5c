"""The sandbox's "citizen phone" page (/sandbox), served by the web process.

It only forwards: a sent message goes to the sandbox control app, which makes the fake provider
deliver it to the hub through the provider's real path; the conversation is polled with HTMX
from what the fake providers received from the hub. Texts are Indonesian, like the citizen's phone.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
from fastapi import FastAPI, File, Form, UploadFile
from fastapi.responses import FileResponse, HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from core.sandbox import DEFAULT_SENDERS, HTMX, LABELS, TEMPLATES, now_wib

MAX_PHOTO = 5_000_000
_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]))
_env.filters["wib"] = now_wib


def _render(name: str, **ctx: Any) -> str:
    return _env.get_template(name).render(labels=LABELS, **ctx)


def add_routes(app: FastAPI, control: str) -> None:
    def available() -> list[str]:
        try:
            return httpx.get(f"{control}/channels", timeout=5).json()["channels"]
        except httpx.HTTPError:
            return []

    def convo(channel: str, sender: str) -> list[dict[str, Any]]:
        resp = httpx.get(f"{control}/conversation", params={"channel": channel, "sender": sender}, timeout=10)
        return resp.json()["messages"] if resp.status_code == 200 else []

    def partial(channel: str, sender: str, error: str | None = None, status: int = 200) -> HTMLResponse:
        return HTMLResponse(_render("_conversation.html", channel=channel, sender=sender, error=error,
                                    messages=convo(channel, sender) if channel and sender else []),
                            status_code=status)

    @app.get("/sandbox", response_class=HTMLResponse, include_in_schema=False)
    def page(channel: str = "telegram", sender: str = "") -> HTMLResponse:
        channels = available()
        channel = channel if channel in channels else (channels[0] if channels else "")
        sender = sender or DEFAULT_SENDERS.get(channel, "")
        return HTMLResponse(_render("phone.html", channels=channels, channel=channel, sender=sender,
                                    defaults=DEFAULT_SENDERS, messages=convo(channel, sender) if channel else []))

    @app.get("/sandbox/static/htmx.min.js", include_in_schema=False)
    def htmx() -> FileResponse:
        return FileResponse(HTMX, media_type="text/javascript")

    @app.get("/sandbox/conversation", response_class=HTMLResponse, include_in_schema=False)
    def conversation(channel: str = "", sender: str = "") -> HTMLResponse:
        return partial(channel, sender.strip())

    @app.post("/sandbox/send", response_class=HTMLResponse, include_in_schema=False)
    async def send(channel: str = Form(...), sender: str = Form(""), text: str = Form(""),
                   lat: str = Form(""), lon: str = Form(""), photo: UploadFile | None = File(None)) -> HTMLResponse:
        sender = sender.strip()
        if channel not in available():
            return partial("", "", "Saluran tidak tersedia di sandbox ini.", 400)
        if not sender:
            return partial(channel, sender, "Isi pengirim (nomor, akun, atau chat id).", 400)
        data = await photo.read(MAX_PHOTO + 1) if photo is not None and photo.filename else None
        if not text.strip() and data is None:
            return partial(channel, sender, "Tulis pesan atau lampirkan foto.", 400)
        if data is not None and len(data) > MAX_PHOTO:
            return partial(channel, sender, "Foto terlalu besar (maksimal 5 MB).", 400)
        try:
            coords = (float(lat), float(lon)) if lat.strip() and lon.strip() else (None, None)
        except ValueError:
            return partial(channel, sender, "Lokasi harus berupa angka lintang dan bujur.", 400)
        body = {"channel": channel, "sender": sender, "text": text.strip()[:2000], "lat": coords[0], "lon": coords[1],
                "photo": base64.b64encode(data).decode() if data else None,
                "photo_type": (photo.content_type if photo is not None else None) or "image/jpeg"}
        async with httpx.AsyncClient(timeout=30) as client:
            resp = await client.post(f"{control}/send", json=body)
        if resp.status_code != 200 or not resp.json().get("ok"):
            return partial(channel, sender, f"Pesan tidak terkirim ({resp.json().get('error') or resp.json().get('hub_status')}).", 502)
        return partial(channel, sender)
