"""Sandbox mode: the real hub talking to local fake providers, with a "citizen phone" page.

A newcomer, a trainer of Media Center operators or a city evaluating Aduan has no Telegram
token, Twilio number or X account. `aduan up --sandbox` starts the fake provider servers the
tests use (those that exist in connectors/fakes), writes a configuration that enables the
real connectors against them (api_base -> fake URL, dummy secrets in the environment), and
starts the hub as usual. Nothing in core knows: the fakes deliver exactly as the providers do
(Telegram calls the webhook with its secret token, Twilio posts a signed form, X and Instagram
make the message available to the pollers).

Two pieces, because the fakes' state lives in the supervisor process while pages are served by
the web process:
- the *control* app (in the process holding the fakes): POST /send makes a fake provider deliver
  a citizen's message; GET /conversation lists what the hub sent back to that citizen;
- `mount(app, cfg)` (web process, only when ADUAN_SANDBOX_CONTROL is set): the /sandbox page,
  which forwards to the control app and polls the conversation with HTMX.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import logging
import os
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.fakes import Running, serve

log = logging.getLogger(__name__)

CONTROL_ENV = "ADUAN_SANDBOX_CONTROL"
LABELS = {"telegram": "Telegram", "sms": "SMS", "whatsapp": "WhatsApp", "twitter": "X", "instagram": "Instagram"}
DEFAULT_SENDERS = {"telegram": "5550101", "sms": "+6281234500001", "whatsapp": "+6281234500002",
                   "twitter": "warga_sby", "instagram": "warga.sby"}
TG_TOKEN, TG_SECRET = "777000:SANDBOX-token", "sandbox-secret-token"
TW_ACCOUNT, TW_TOKEN, SMS_FROM, WA_FROM = "AC" + "0" * 32, "sandbox-twilio-token", "+62315550100", "+62315550199"
IG_TOKEN = "sandbox-graph-token"
TEMPLATES = Path(__file__).resolve().parent / "templates" / "sandbox"
HTMX = Path(__file__).resolve().parent / "static" / "htmx.min.js"


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@dataclass
class Sandbox:
    """The fake providers of one sandbox, and what the citizens wrote to them."""

    hub_url: str
    states: dict[str, Any] = field(default_factory=dict)  # channel -> fake provider state
    running: list[Running] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)  # the citizens' side of the conversations
    seen: dict[str, float] = field(default_factory=dict)  # hub reply key -> when it first arrived
    photos: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # served to the fakes by the control app
    control_url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def channels(self) -> list[str]:
        return [c for c in LABELS if c in self.states]

    def stop(self) -> None:
        for r in self.running:
            r.stop()

    # ------------------------------------------------------------ citizen -> provider -> hub

    def send(self, channel: str, sender: str, text: str, photo: bytes | None = None,
             photo_type: str = "image/jpeg", lat: float | None = None, lon: float | None = None) -> int:
        """Make the fake provider deliver a citizen's message the way the real one would; returns the
        HTTP status the hub answered (200 for pollers once the message is queued at the provider)."""
        if channel not in self.states:
            raise ValueError(f"channel {channel!r} is not available in this sandbox")
        state = self.states[channel]
        photo_url = None
        if photo is not None:
            key = hashlib.sha256(photo).hexdigest()[:24]
            self.photos[key] = (photo, photo_type)
            photo_url = f"{self.control_url}/photo/{key}"
        located = lat is not None and lon is not None
        status = 200
        if channel == "telegram":
            chat = int("".join(ch for ch in sender if ch.isdigit()) or "0")
            extra: dict[str, Any] = {}
            if photo is not None:
                fid = "AgAC" + hashlib.sha256(photo).hexdigest()[:20]
                state.files[f"photos/{fid}.jpg"] = (photo, photo_type)
                extra["photo"] = [{"file_id": fid, "file_unique_id": fid[-8:], "width": 1280, "height": 960,
                                   "file_size": len(photo)}]
                extra["caption"] = text
            if located:
                extra["location"] = {"latitude": lat, "longitude": lon}
            update = state.citizen_update(chat, "" if photo is not None else text, first_name="Warga", **extra)
            status = state.deliver(update).status_code
        elif channel in ("sms", "whatsapp"):
            number = sender if channel == "sms" else f"whatsapp:{sender}"
            kw: dict[str, Any] = {"to": SMS_FROM if channel == "sms" else WA_FROM}
            if photo_url:
                kw["media"] = [(photo_url, photo_type)]
            if located and channel == "whatsapp":
                kw.update(Latitude=str(lat), Longitude=str(lon))
            elif located:
                text = f"{text} (lokasi {lat:.5f}, {lon:.5f})"
            resp, _ = state.send_inbound(f"{self.hub_url}/webhooks/sms", number, text, **kw)
            status = resp.status_code
        elif channel == "twitter":
            uid = _x_user_id(sender)
            state.user(uid, sender.lstrip("@"))
            body = f"@{state.me['username']} {text}" + (f" (lokasi {lat:.5f}, {lon:.5f})" if located else "")
            state.mention(uid, body, photos=[photo_url] if photo_url else [])
        elif channel == "instagram":
            handle = sender.lstrip("@")
            body = text + (f" (lokasi {lat:.5f}, {lon:.5f})" if located else "")
            if photo is not None:  # a photo is a post of the citizen's own that tags the city
                state.add_tagged_post(handle, f"@{state.username} {body}", photo, photo_type)
            else:
                state.add_comment(state.posts[0]["code"], handle, body)
        with self.lock:
            self.sent.append({"channel": channel, "sender": _norm_sender(channel, sender), "text": text,
                              "photo": photo is not None, "location": [lat, lon] if located else None,
                              "at": time.time()})
        return status

    # ------------------------------------------------------------ hub -> provider -> citizen

    def conversation(self, channel: str, sender: str) -> list[dict[str, Any]]:
        """The citizen's messages and the hub's replies, in the order they happened."""
        sender = _norm_sender(channel, sender)
        items = [{"who": "citizen", **m} for m in self.sent if m["channel"] == channel and m["sender"] == sender]
        for key, text in self._replies(channel, sender):
            with self.lock:
                at = self.seen.setdefault(key, time.time())
            items.append({"who": "hub", "text": text, "at": at})
        return sorted(items, key=lambda m: m["at"])

    def _replies(self, channel: str, sender: str) -> list[tuple[str, str]]:
        state = self.states.get(channel)
        if state is None:
            return []
        if channel == "telegram":
            chat = int("".join(ch for ch in sender if ch.isdigit()) or "0")
            return [(f"tg:{m['message_id']}", m["text"]) for m in state.messages_to(chat)]
        if channel in ("sms", "whatsapp"):
            number = sender if channel == "sms" else f"whatsapp:{sender}"
            return [(f"tw:{m['sid']}", m.get("body") or "") for m in state.messages_to(number)]
        if channel == "twitter":
            uid = _x_user_id(sender)
            public = [(f"x:{t['id']}", t["text"]) for t in list(state.tweets)
                      if t.get("in_reply_to_user_id") == uid and t.get("author_id") == state.me["id"]]
            return public + [(f"xdm:{d['id']}", d["text"]) for d in state.dms_to(uid)]
        if channel == "instagram":
            mine = {c["id"] for cs in list(state.comments.values()) for c in cs
                    if c["owner"]["username"] == sender}
            return [(f"ig:{r['id']}", r["message"]) for r in list(state.replies) if r["parent_id"] in mine]
        return []


def _norm_sender(channel: str, sender: str) -> str:
    sender = sender.strip()
    return sender.lstrip("@").lower() if channel in ("twitter", "instagram") else sender


def _x_user_id(handle: str) -> str:
    return str(1_500_000_000_000_000_000 + zlib.crc32(handle.lstrip("@").lower().encode()))


# ------------------------------------------------------------------ starting the fakes


def start(hub_url: str, session_dir: Path) -> Sandbox:
    """Start every available fake provider (and the control app) on loopback."""
    sb = Sandbox(hub_url=hub_url.rstrip("/"))
    from connectors.fakes.telegram import TelegramState, create_app as tg_app

    tg = TelegramState(token=TG_TOKEN)
    sb.running.append(serve(tg_app(tg)))
    tg.webhook = {"url": f"{sb.hub_url}/webhooks/telegram", "secret_token": TG_SECRET}
    sb.states["telegram"] = tg
    sb.env.update(TELEGRAM_BOT_TOKEN=TG_TOKEN, TELEGRAM_SECRET_TOKEN=TG_SECRET)
    sb.overrides["telegram"] = {"enabled": True, "mode": "webhook", "api_base": sb.running[-1].url,
                                "token": "${TELEGRAM_BOT_TOKEN}", "secret_token": "${TELEGRAM_SECRET_TOKEN}"}
    if _has("connectors.fakes.twilio") and _has("connectors.sms"):
        from connectors.fakes.twilio import TwilioState, create_app as tw_app

        tw = TwilioState(account_sid=TW_ACCOUNT, auth_token=TW_TOKEN)
        sb.running.append(serve(tw_app(tw)))
        sb.env.update(TWILIO_ACCOUNT_SID=TW_ACCOUNT, TWILIO_AUTH_TOKEN=TW_TOKEN, TWILIO_SMS_FROM=SMS_FROM,
                      TWILIO_WHATSAPP_FROM=WA_FROM)
        sb.states["sms"] = tw
        sb.overrides["sms"] = {"enabled": True, "api_base": sb.running[-1].url}
        if _has("connectors.whatsapp"):
            sb.states["whatsapp"] = tw
            sb.overrides["whatsapp"] = {"enabled": True, "api_base": sb.running[-1].url}
    if _has("connectors.fakes.x") and _has("connectors.twitter"):
        from connectors.fakes.x import XState, create_app as x_app

        xs = XState()
        sb.running.append(serve(x_app(xs)))
        sb.states["twitter"] = xs
        sb.env.update(X_BEARER_TOKEN=xs.bearer_token, X_CONSUMER_KEY=xs.consumer_key,
                      X_CONSUMER_SECRET=xs.consumer_secret, X_ACCESS_TOKEN=xs.access_token,
                      X_ACCESS_TOKEN_SECRET=xs.access_token_secret)
        sb.overrides["twitter"] = {"enabled": True, "api_base": sb.running[-1].url, "poll_interval": 2,
                                   "monthly_read_budget": None, "backfill_hours": 1}
    from connectors.fakes.instagram import InstagramState, create_app as ig_app

    ig = InstagramState(username="surabaya", graph_token=IG_TOKEN)
    sb.running.append(serve(ig_app(ig)))
    ig.url = sb.running[-1].url
    ig.add_post("Sampaikan keluhan Anda tentang layanan kota di kolom komentar. #SurabayaBisa")
    sb.states["instagram"] = ig
    session = session_dir / "sandbox-instagram.session"
    import pickle

    session.write_bytes(pickle.dumps({"sessionid": "fake-session-id", "csrftoken": "sandbox",
                                      "ds_user_id": ig.user_pk}))
    sb.env["INSTAGRAM_GRAPH_TOKEN"] = IG_TOKEN
    sb.overrides["instagram"] = {"enabled": True, "username": ig.username, "session_file": str(session),
                                 "web_base": ig.url, "graph_api_base": f"{ig.url}/graph/v21.0",
                                 "graph_token": "${INSTAGRAM_GRAPH_TOKEN}", "poll_interval": 2, "backfill_hours": 24}
    control = serve(control_app(sb))
    sb.running.append(control)
    sb.control_url = control.url
    sb.env[CONTROL_ENV] = control.url
    return sb


def write_config(sb: Sandbox, source: Path, target: Path) -> Path:
    """The admin's configuration with the sandbox's channel blocks on top (the file itself is untouched).
    Channels that talk to a real provider (they have secrets) and have no fake are switched off, so a
    sandbox never reaches a real account; local ones (Open311) stay as configured."""
    from connectors import REGISTRY, load_connector
    from core.config import _secret_fields

    raw = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    raw.setdefault("hub", {})["public_url"] = sb.hub_url
    channels = raw.setdefault("channels", {})
    for name, block in channels.items():
        if name not in REGISTRY or _secret_fields(load_connector(name).Settings):
            block["enabled"] = False
    for name, block in sb.overrides.items():
        channels.setdefault(name, {}).update(block)
    target.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return target


def prepare(env: dict[str, str], host: str, port: int) -> Sandbox:
    """For `aduan up --sandbox`: start the fakes here and point the children's environment at them."""
    from core.config import config_path, data_dir

    sb = start(f"http://{host}:{port}", data_dir())
    cfg = write_config(sb, config_path(), data_dir() / "sandbox-config.yaml")
    env.update(sb.env)
    env["ADUAN_CONFIG"] = str(cfg)
    os.environ.update(sb.env)
    os.environ["ADUAN_CONFIG"] = str(cfg)
    print(f"Sandbox: fake providers for {', '.join(LABELS[c] for c in sb.channels())}; "
          f"citizen phone at {sb.hub_url}/sandbox", flush=True)
    return sb


# ------------------------------------------------------------------ control app (next to the fakes)


def control_app(sb: Sandbox) -> FastAPI:
    app = FastAPI()

    @app.get("/channels")
    def channels() -> JSONResponse:
        return JSONResponse({"channels": sb.channels()})

    @app.post("/send")
    async def send(request: Request) -> JSONResponse:
        body = await request.json()
        photo = base64.b64decode(body["photo"]) if body.get("photo") else None
        try:
            import asyncio

            status = await asyncio.to_thread(sb.send, body["channel"], body["sender"], body.get("text", ""), photo,
                                             body.get("photo_type") or "image/jpeg", body.get("lat"), body.get("lon"))
        except (ValueError, KeyError, IndexError) as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=400)
        return JSONResponse({"ok": status < 300, "hub_status": status})

    @app.get("/conversation")
    def conversation(channel: str, sender: str) -> JSONResponse:
        return JSONResponse({"messages": sb.conversation(channel, sender)})

    @app.get("/photo/{key}")
    def photo(key: str) -> Response:
        item = sb.photos.get(key)
        return Response(item[0], media_type=item[1]) if item else Response(status_code=404)

    return app


# ------------------------------------------------------------------ the page (web process)


def mount(app: FastAPI, cfg: Any) -> None:
    """Add /sandbox when this web process belongs to a sandbox hub (ADUAN_SANDBOX_CONTROL is set)."""
    control = os.environ.get(CONTROL_ENV)
    if not control:
        return
    from core.sandbox_page import add_routes

    add_routes(app, control)


def play_demo_later(sb: Sandbox) -> None:
    """`--seed-demo`: a day of complaints on every channel, once the hub answers."""
    from core.sandbox_demo import play_later

    play_later(sb)


def now_wib(ts: float) -> str:
    from zoneinfo import ZoneInfo

    return datetime.fromtimestamp(ts, tz=timezone.utc).astimezone(ZoneInfo("Asia/Jakarta")).strftime("%H:%M WIB")

