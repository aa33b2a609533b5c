"""Shared set-up for the console tests: users of every role, complaints that went through the
real pipeline (fake Telegram -> intake -> RQ worker), and the hub's web app served on loopback."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

import httpx
from sqlmodel import select

from connectors.fakes import Running, serve
from connectors.fakes.telegram import TelegramState, create_app as fake_telegram_app
from core.models import Ticket

TOKEN = "123456:TEST-token"
SECRET = "s3cret-Token_1"
PASSWORD = "Sur4baya-console"
USERS = {  # username: (role, opd)
    "admin": ("admin", None), "opr": ("operator", None), "dsd": ("opd", "DSDABM"),
    "dlh": ("opd", "DLH"), "viewer": ("viewer", None),
}
COMPLAINTS = {  # key: (chat id, text)
    "pju": (6281234561234, "Lampu PJU di Jl. Rungkut Asri Timur mati sudah seminggu, gelap sekali"),
    "sampah": (5552002, "Sampah di TPS Keputih belum diangkut tiga hari, bau sekali"),
    "xss": (5552003, "<script>alert('xss')</script><b>Jalan berlubang</b> besar di Jl. Kertajaya <img src=x onerror=alert(1)>"),
    "darmo": (5552004, "Jalan berlubang dalam di Jl. Raya Darmo depan sekolah, bahaya buat motor"),
}
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Console:
    url: str
    fake: TelegramState
    tickets: dict[str, int] = field(default_factory=dict)  # complaint key -> ticket id
    numbers: dict[str, str] = field(default_factory=dict)
    servers: list[Running] = field(default_factory=list)

    def stop(self) -> None:
        for s in self.servers:
            s.stop()


def cheap_argon2(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """argon2id with the library's cheapest parameters: the same code path, a few ms per hash instead
    of 0.5 s, so the suite stays fast. Production keeps argon2-cffi's defaults (checked in test_auth)."""
    from argon2 import PasswordHasher, profiles

    from core import auth

    monkeypatch.setattr(auth, "_hasher", PasswordHasher.from_parameters(profiles.CHEAPEST))


def csrf_of(html: str) -> str:
    m = CSRF_INPUT.search(html)
    assert m, "page has no CSRF token"
    return m.group(1)


class Client(httpx.Client):
    """An httpx client signed in to the console, remembering its CSRF token."""

    csrf: str = ""

    def post_form(self, path: str, data: dict | None = None, **kw) -> httpx.Response:  # type: ignore[no-untyped-def]
        return self.post(path, data={"csrf_token": self.csrf, **(data or {})}, **kw)


def login(url: str, username: str, password: str = PASSWORD) -> Client:
    c = Client(base_url=url, follow_redirects=False, timeout=20)
    r = c.post("/console/login", data={"username": username, "password": password,
                                      "csrf_token": csrf_of(c.get("/console/login").text)})
    assert r.status_code == 303, r.text[:500]
    c.csrf = csrf_of(c.get("/console/overview").text)
    return c


def make_users(hub) -> None:  # type: ignore[no-untyped-def]
    from core import auth
    from core.db import session_scope

    with session_scope() as s:
        for name, (role, opd) in USERS.items():
            auth.create_user(s, name, PASSWORD, role, opd, display_name=name.upper(), actor="test")


def start_console(hub, complaints: dict[str, tuple[int, str]] | None = None) -> Console:  # type: ignore[no-untyped-def]
    """Fake Telegram + the hub's app on loopback, users of each role, complaints processed by a worker."""
    from core.intake import accept
    from core.web import create_app

    fake = TelegramState(token=TOKEN)
    fake_server = serve(fake_telegram_app(fake))
    hub.mp.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    hub.mp.setenv("TELEGRAM_SECRET_TOKEN", SECRET)
    # hub.configure() without its second migration (the fixture has migrated this database already)
    hub.raw.setdefault("channels", {}).setdefault("telegram", {}).update(
        {"enabled": True, "mode": "webhook", "api_base": fake_server.url})
    import yaml

    from tests.conftest import reset_caches

    hub.config_path.write_text(yaml.safe_dump(hub.raw, allow_unicode=True), encoding="utf-8")
    reset_caches()
    make_users(hub)
    complaints = COMPLAINTS if complaints is None else complaints
    ids = {}
    for key, (chat, text) in complaints.items():
        update = fake.citizen_update(chat, text, first_name=f"Warga {key}")
        from connectors.telegram import TelegramConnector

        ids[key] = accept(TelegramConnector.parse(update)).message_id
    drain(hub)
    console = Console(url="", fake=fake, servers=[fake_server])
    from core.models import Message

    with hub.session() as s:
        for key, mid in ids.items():
            msg = s.get(Message, mid)
            if msg is not None and msg.ticket_id:
                t = s.get(Ticket, msg.ticket_id)
                console.tickets[key], console.numbers[key] = t.id, t.number
    app_server = serve(create_app(hub.cfg))
    console.servers.append(app_server)
    console.url = app_server.url
    return console


def drain(hub) -> None:  # type: ignore[no-untyped-def]
    """Run the real RQ worker in its own thread (Playwright's sync API keeps an event loop in this one,
    and the Telegram connector runs its own)."""
    import threading

    from rq import SimpleWorker
    from rq.serializers import JSONSerializer
    from rq.timeouts import TimerDeathPenalty

    from core.queue import QUEUES
    from core.redisconn import get_redis

    class ThreadWorker(SimpleWorker):
        death_penalty_class = TimerDeathPenalty  # SIGALRM only works in the main thread

        def _install_signal_handlers(self) -> None:
            pass

    worker = ThreadWorker(list(QUEUES), connection=get_redis(), serializer=JSONSerializer)
    t = threading.Thread(target=worker.work, kwargs={"burst": True})
    t.start()
    t.join(timeout=60)


def add_ticket(hub, opd: str | None, text: str, routed_minutes_ago: float | None = 10, channel: str = "telegram",  # type: ignore[no-untyped-def]
               address: str = "5550000", number: str | None = None) -> int:
    """A ticket written straight to the database (for volume tests where the pipeline is not the subject)."""
    from datetime import timedelta

    from core.intake import get_or_create_contact
    from core.models import Message

    now = datetime.now(timezone.utc)
    with hub.session() as s:
        contact = get_or_create_contact(s, channel, address, "Warga Uji")
        routed = now - timedelta(minutes=routed_minutes_ago) if routed_minutes_ago is not None else None
        t = Ticket(channel=channel, contact_id=contact.id, subject=text, opd_code=opd,
                   status="routed" if opd else "new", triage=opd is None, created_at=routed or now,
                   routed_at=routed if opd else None, updated_at=now)
        s.add(t)
        s.flush()
        t.number = number or f"ADU-2026-{t.id:06d}"
        s.add(Message(direction="in", channel=channel, external_id=f"seed-{t.id}", contact_id=contact.id,
                      ticket_id=t.id, text=text, received_at=t.created_at, created_at=now, state="processed",
                      kind="complaint"))
        s.commit()
        return t.id


def tickets(hub) -> list[Ticket]:  # type: ignore[no-untyped-def]
    with hub.session() as s:
        return list(s.exec(select(Ticket)).all())
