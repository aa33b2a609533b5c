"""Console accounts and sessions over real HTTP and real Redis: argon2 hashes, password policy,
cookies, CSRF, login throttling, session expiry, security headers, and the `aduan user` CLI."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlmodel import select
from typer.testing import CliRunner

from connectors.fakes import serve
from core import auth
from core.console.models import User
from core.models import Event
from tests.console_support import cheap_argon2, PASSWORD, Client, csrf_of, login, make_users


@pytest.fixture(autouse=True)
def _fast_hashes(request, monkeypatch):  # type: ignore[no-untyped-def]
    if "argon2" not in request.node.name:  # that test checks the production parameters
        cheap_argon2(monkeypatch)



@pytest.fixture
def web(sqlite_hub):  # type: ignore[no-untyped-def]
    from core.web import create_app

    make_users(sqlite_hub)
    running = serve(create_app(sqlite_hub.cfg))
    yield running
    running.stop()


def _login_attempt(url: str, username: str, password: str) -> httpx.Response:
    c = httpx.Client(base_url=url, follow_redirects=False)
    token = csrf_of(c.get("/console/login").text)
    return c.post("/console/login", data={"username": username, "password": password, "csrf_token": token})


def test_passwords_are_argon2_and_policy_is_enforced(sqlite_hub):  # type: ignore[no-untyped-def]
    with sqlite_hub.session() as s:  # the production hasher (the other tests use cheap parameters)
        auth.create_user(s, "admin", PASSWORD, "admin")
        s.commit()
        user = s.exec(select(User).where(User.username == "admin")).one()
    assert user.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$") and PASSWORD not in user.password_hash
    assert auth.verify_password(user.password_hash, PASSWORD) and not auth.verify_password(user.password_hash, "x" * 12)
    for bad, why in (("short-pw", "at least 10"), ("xxadmin-123456", "username")):
        with pytest.raises(auth.AuthError, match=why):
            auth.check_password_policy(bad, "admin")
    with sqlite_hub.session() as s, pytest.raises(auth.AuthError, match="OPD code"):
        auth.create_user(s, "petugas", "panjang-sekali-1", "opd")


def test_login_sets_a_safe_session_cookie_and_logout_ends_it(web):  # type: ignore[no-untyped-def]
    r = _login_attempt(web.url, "opr", PASSWORD)
    assert r.status_code == 303 and r.headers["location"] == "/console"
    cookie = r.headers["set-cookie"]
    assert "aduan_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http on loopback; see the https test below
    c = login(web.url, "opr")
    assert c.get("/console").status_code == 200
    stolen = c.cookies.get("aduan_session")
    assert c.post_form("/console/logout").status_code == 303
    replay = Client(base_url=web.url, follow_redirects=False, cookies={"aduan_session": stolen})
    assert replay.get("/console").status_code == 303  # the server forgot the session


def test_secure_cookie_flag_and_security_headers_when_public_url_is_https(sqlite_hub):  # type: ignore[no-untyped-def]
    from core.web import create_app

    sqlite_hub.raw["hub"]["public_url"] = "https://aduan.surabaya.go.id"
    sqlite_hub.configure()
    make_users(sqlite_hub)
    running = serve(create_app(sqlite_hub.cfg))
    try:
        page = httpx.get(f"{running.url}/console/login")
        assert "Secure" in page.headers["set-cookie"]  # even the pre-login CSRF cookie
        token = csrf_of(page.text)  # (a browser would only send Secure cookies over https)
        r = httpx.post(f"{running.url}/console/login", headers={"Cookie": f"aduan_pre={token}"},
                       data={"username": "opr", "password": PASSWORD, "csrf_token": token})
        assert r.status_code == 303 and "Secure" in r.headers["set-cookie"] and "HttpOnly" in r.headers["set-cookie"]
        h = httpx.get(f"{running.url}/console/login").headers
        assert "default-src 'self'" in h["content-security-policy"] and "frame-ancestors 'none'" in h["content-security-policy"]
        assert h["x-frame-options"] == "DENY" and h["x-content-type-options"] == "nosniff"
        assert h["referrer-policy"] == "same-origin" and "max-age" in h["strict-transport-security"]
    finally:
        running.stop()


def test_wrong_password_and_unknown_user_look_the_same(web):  # type: ignore[no-untyped-def]
    a, b = _login_attempt(web.url, "opr", "wrong-password-1"), _login_attempt(web.url, "nobody", "wrong-password-1")
    assert a.status_code == b.status_code == 401
    assert "Nama pengguna atau kata sandi salah." in a.text and "Nama pengguna atau kata sandi salah." in b.text


def test_login_throttled_after_five_failures_per_user_and_ip(web, sqlite_hub):  # type: ignore[no-untyped-def]
    for _ in range(5):
        assert _login_attempt(web.url, "dsd", "tebakan-salah-1").status_code == 401
    locked = _login_attempt(web.url, "dsd", PASSWORD)  # even the right password waits
    assert locked.status_code == 429 and "Terlalu banyak percobaan gagal" in locked.text and "15 menit" in locked.text
    assert _login_attempt(web.url, "dlh", PASSWORD).status_code == 303  # other accounts are not affected
    from core.redisconn import get_redis

    ttl = get_redis().ttl("aduan:login-fail:dsd:127.0.0.1")
    assert 800 < ttl <= 900
    get_redis().expire("aduan:login-fail:dsd:127.0.0.1", 1)  # the 15-minute window passes
    import time

    time.sleep(1.2)
    assert _login_attempt(web.url, "dsd", PASSWORD).status_code == 303
    with sqlite_hub.session() as s:
        assert len(s.exec(select(Event).where(Event.action == "auth.failed", Event.actor == "dsd")).all()) == 5


def test_post_without_valid_csrf_token_is_refused(web, sqlite_hub):  # type: ignore[no-untyped-def]
    from tests.console_support import add_ticket

    tid = add_ticket(sqlite_hub, "DSDABM", "jalan rusak parah")
    opr, other = login(web.url, "opr"), login(web.url, "admin")
    for data in ({}, {"csrf_token": "forged"}, {"csrf_token": other.csrf}):
        r = opr.post(f"/console/tickets/{tid}/note", data={"text": "halo", **data})
        assert r.status_code == 403 and "CSRF" in r.text
    r = opr.post(f"/console/tickets/{tid}/note", data={"text": "lewat header"}, headers={"X-CSRF-Token": opr.csrf})
    assert r.status_code == 303  # HTMX sends the token in a header
    assert opr.post_form(f"/console/tickets/{tid}/note", {"text": "lewat form"}).status_code == 303
    with sqlite_hub.session() as s:
        notes = [e.data["text"] for e in s.exec(select(Event).where(Event.action == "note")).all()]
    assert notes == ["lewat header", "lewat form"]
    # the login form too: a cross-site page cannot log a victim into an attacker's account
    r = httpx.post(f"{web.url}/console/login", data={"username": "opr", "password": PASSWORD})
    assert r.status_code == 403


def test_sessions_expire_and_end_when_user_is_disabled(web, sqlite_hub):  # type: ignore[no-untyped-def]
    from core.redisconn import get_redis

    c = login(web.url, "viewer")
    token = c.cookies.get("aduan_session")
    r = get_redis()
    assert auth.IDLE_SECONDS - 5 < r.ttl(f"aduan:sess:{token}") <= auth.IDLE_SECONDS  # idle expiry
    data = json.loads(r.get(f"aduan:sess:{token}"))
    data["created"] -= auth.ABSOLUTE_SECONDS + 1  # a shift and a bit ago
    r.set(f"aduan:sess:{token}", json.dumps(data), ex=60)
    assert c.get("/console/overview").status_code == 303
    c = login(web.url, "viewer")
    with sqlite_hub.session() as s:
        user = s.exec(select(User).where(User.username == "viewer")).one()
        auth.set_active(s, user, False, "test")
        s.commit()
    assert c.get("/console/overview").status_code == 303
    assert _login_attempt(web.url, "viewer", PASSWORD).status_code == 401


def test_no_open_redirect_after_login(web):  # type: ignore[no-untyped-def]
    for nxt in ("//evil.example/x", "https://evil.example", "/console/tickets/1"):
        c = httpx.Client(base_url=web.url, follow_redirects=False)
        token = csrf_of(c.get("/console/login").text)
        r = c.post("/console/login", data={"username": "opr", "password": PASSWORD, "csrf_token": token, "next": nxt})
        assert r.headers["location"] == (nxt if nxt.startswith("/console") else "/console")


def test_user_cli_add_passwd_disable(sqlite_hub):  # type: ignore[no-untyped-def]
    from core.cli import app

    runner = CliRunner()
    ok = runner.invoke(app, ["user", "add", "kepala", "--role", "admin", "--password", "admin-pertama-1"])
    assert ok.exit_code == 0, ok.output
    weak = runner.invoke(app, ["user", "add", "lemah", "--role", "viewer", "--password", "pendek"])
    assert weak.exit_code == 2 and "at least 10" in weak.output
    bad = runner.invoke(app, ["user", "add", "petugas", "--role", "opd", "--opd", "NOPE", "--password", "panjang-sekali-1"])
    assert bad.exit_code == 2 and "unknown OPD" in bad.output
    assert runner.invoke(app, ["user", "passwd", "kepala", "--password", "ganti-sandi-baru"]).exit_code == 0
    assert runner.invoke(app, ["user", "disable", "kepala"]).exit_code == 0
    with sqlite_hub.session() as s:
        user = s.exec(select(User).where(User.username == "kepala")).one()
    assert user.active is False and auth.verify_password(user.password_hash, "ganti-sandi-baru")
    missing = runner.invoke(app, ["user", "disable", "siapa"])
    assert missing.exit_code == 2 and "no user" in missing.output
