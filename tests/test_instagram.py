"""Instagram end to end: the real instaloader against a fake Instagram web endpoint on 127.0.0.1, the real
httpx against a fake Graph API, real Redis and RQ worker, SQLite and PostgreSQL."""

from __future__ import annotations

import pickle

import pytest
from sqlmodel import select

from connectors.base import Outgoing, PermanentError, RetryableError
from connectors.fakes import serve
from connectors.fakes.instagram import InstagramState, create_app
from connectors.instagram import InstagramConnector, manual_outbox, mark_manual_sent, read_status
from core.models import Cursor, Event, Message, Ticket
from tests.contract import ConnectorContract

GRAPH_TOKEN = "EAAG-page-token-123"


@pytest.fixture
def fake_ig():  # type: ignore[no-untyped-def]
    state = InstagramState(username="surabaya", graph_token=GRAPH_TOKEN)
    running = serve(create_app(state))
    state.url = running.url
    yield state
    running.stop()


def session_file(tmp_path, sessionid: str = "fake-session-id") -> str:  # type: ignore[no-untyped-def]
    """A session file as `instaloader --login` writes it: the pickled cookie dict."""
    path = tmp_path / "ig.session"
    path.write_bytes(pickle.dumps({"sessionid": sessionid, "csrftoken": "csrf123", "ds_user_id": "1067259270",
                                   "mid": "Zmid", "ig_did": "D1D"}))
    return str(path)


def ig_hub(hub, fake, token: str | None = GRAPH_TOKEN, sessionid: str = "fake-session-id", **extra):  # type: ignore[no-untyped-def]
    block = {"enabled": True, "username": "surabaya", "session_file": session_file(hub.tmp, sessionid),
             "web_base": fake.url, "graph_api_base": f"{fake.url}/graph/v21.0", "poll_interval": 10, **extra}
    if token:
        hub.mp.setenv("INSTAGRAM_GRAPH_TOKEN", token)
        block["graph_token"] = "${INSTAGRAM_GRAPH_TOKEN}"
    else:
        block.pop("graph_token", None)
        hub.raw["channels"].get("instagram", {}).pop("graph_token", None)
    hub.configure(instagram=block)
    return hub


def connector(hub) -> InstagramConnector:  # type: ignore[no-untyped-def]
    """A fresh connector, as after a restart of the connectors process."""
    from tests.conftest import reset_caches

    reset_caches()
    from core.channels import get_connector

    return get_connector(hub.cfg, "instagram")  # type: ignore[return-value]


def inbound(hub) -> list[Message]:  # type: ignore[no-untyped-def]
    with hub.session() as s:
        return list(s.exec(select(Message).where(Message.direction == "in").order_by(Message.id)).all())


def test_comments_ingested_once_across_restarts(hub, fake_ig):  # type: ignore[no-untyped-def]
    ig_hub(hub, fake_ig)
    post = fake_ig.add_post("Sampaikan keluhan Anda di kolom komentar")
    older = fake_ig.add_post("Info Suroboyo Bus")
    c1 = fake_ig.add_comment(post["code"], "warga.rungkut", "Lampu PJU di Jl. Rungkut Madya mati sejak Senin")
    fake_ig.add_comment(post["code"], "surabaya", "Terima kasih, kami cek")  # the city's own comment
    fake_ig.add_comment(older["code"], "bu_tini", "Halte Suroboyo Bus di Jl. Darmo atapnya bocor")

    result = connector(hub).poll_once()
    assert result.state == "ok" and result.ingested == 2
    rows = inbound(hub)
    assert {(m.sender_display, m.in_reply_to) for m in rows} == {("@warga.rungkut", post["code"]),
                                                                 ("@bu_tini", older["code"])}
    assert all(m.public for m in rows)
    assert any(m.external_id == c1["id"] for m in rows)
    assert read_status()["state"] == "ok"

    again = connector(hub).poll_once()  # restarted poller: nothing twice
    assert again.ingested == 0 and len(inbound(hub)) == 2
    fake_ig.add_comment(post["code"], "warga.rungkut", "Sudah seminggu belum diperbaiki min")
    assert connector(hub).poll_once().ingested == 1
    assert len(inbound(hub)) == 3


def test_many_comments_are_paged_through(sqlite_hub, fake_ig):  # type: ignore[no-untyped-def]
    """More than one GraphQL page of comments: instaloader switches to the iPhone endpoint."""
    ig_hub(sqlite_hub, fake_ig)
    post = fake_ig.add_post("Laporan banjir")
    for i in range(25):
        fake_ig.add_comment(post["code"], f"warga{i}", f"Genangan di gang {i} belum surut")
    assert connector(sqlite_hub).poll_once().ingested == 25
    assert "iphone comments" in fake_ig.calls
    assert len({m.external_id for m in inbound(sqlite_hub)}) == 25


def test_rate_limit_backs_off_and_keeps_its_place(sqlite_hub, fake_ig):  # type: ignore[no-untyped-def]
    hub = ig_hub(sqlite_hub, fake_ig)
    post = fake_ig.add_post("Kolom aduan")
    fake_ig.add_comment(post["code"], "andi", "Jalan berlubang di Jl. Ahmad Yani depan Royal Plaza")
    conn = connector(hub)
    assert conn.poll_once().ingested == 1
    with hub.session() as s:
        cursor = s.exec(select(Cursor).where(Cursor.key == f"post:{post['code']}")).one().value

    fake_ig.add_comment(post["code"], "sari", "Sampah di TPS Wonokromo belum diangkut")
    fake_ig.fail_next(429, {"message": "Please wait a few minutes before you try again.", "status": "fail"}, times=3)
    first = conn.poll_once()
    assert first.state == "rate_limited" and first.ingested == 0 and first.delay == 20
    status = read_status()
    assert status["state"] == "rate_limited" and "otomatis" in status["action"] and status["retry_at"]
    fake_ig.failures.clear()
    fake_ig.fail_next(400, {"message": "Please wait a few minutes before you try again.", "status": "fail"}, times=3)
    second = conn.poll_once()
    assert second.state == "rate_limited" and second.delay == 40  # backs off further
    with hub.session() as s:  # the place is kept
        assert s.exec(select(Cursor).where(Cursor.key == f"post:{post['code']}")).one().value == cursor
    fake_ig.failures.clear()
    recovered = conn.poll_once()
    assert recovered.state == "ok" and recovered.ingested == 1 and recovered.delay == 10
    assert sorted(m.sender_display for m in inbound(hub)) == ["@andi", "@sari"]


@pytest.mark.parametrize("case", ["checkpoint", "expired_session", "missing_file"])
def test_login_problems_are_reported_with_what_to_do(sqlite_hub, fake_ig, case):  # type: ignore[no-untyped-def]
    hub = ig_hub(sqlite_hub, fake_ig, sessionid="expired" if case == "expired_session" else "fake-session-id")
    fake_ig.add_post("Kolom aduan")
    if case == "checkpoint":
        fake_ig.fail_next(400, {"message": "checkpoint_required", "status": "fail",
                                "checkpoint_url": "/challenge/"}, times=3)
    if case == "missing_file":
        (hub.tmp / "ig.session").unlink()
    result = connector(hub).poll_once()
    expected = "checkpoint" if case == "checkpoint" else "login_required"
    assert result.state == expected and result.delay > 10
    status = read_status()
    assert status["state"] == expected
    assert ("verifikasi" if case == "checkpoint" else "instaloader --login") in status["action"]


def test_reply_goes_under_the_comment_through_the_graph_api(hub, fake_ig):  # type: ignore[no-untyped-def]
    ig_hub(hub, fake_ig)
    post = fake_ig.add_post("Kolom aduan")
    comment = fake_ig.add_comment(post["code"], "warga.sby", "Saluran got di Jl. Kertajaya mampet, air meluap ke jalan")
    connector(hub).poll_once()
    hub.run_worker()
    with hub.session() as s:
        ticket = s.exec(select(Ticket)).one()
        out = s.exec(select(Message).where(Message.direction == "out")).one()
    replies = fake_ig.replies_to(comment["id"])
    assert len(replies) == 1 and ticket.number in replies[0]["message"]
    assert ticket.opd_code == "DSDABM"
    assert out.delivery_state == "sent" and out.provider_id == replies[0]["id"] and out.public


def test_public_reply_carries_no_personal_data(sqlite_hub, fake_ig):  # type: ignore[no-untyped-def]
    ig_hub(sqlite_hub, fake_ig)
    post = fake_ig.add_post("Kolom aduan")
    comment = fake_ig.add_comment(post["code"], "warga", "tolong")
    ctx = {"kind": "comment", "comment": {"id": comment["id"]}, "post": {"shortcode": post["code"]}}
    text = ("Laporan ADU-2026-000042 diteruskan. Hubungi petugas di 0812-3456-7890 atau budi@example.com, "
            "NIK pelapor 3578012345670001.")
    connector(sqlite_hub).send(Outgoing(to="warga", text=text, reply_to=comment["id"], public=True, context=ctx))
    sent = fake_ig.replies_to(comment["id"])[0]["message"]
    assert "ADU-2026-000042" in sent
    for secret in ("0812", "3456-7890", "budi@example.com", "3578012345670001"):
        assert secret not in sent


def test_without_token_replies_wait_in_the_manual_outbox(hub, fake_ig):  # type: ignore[no-untyped-def]
    ig_hub(hub, fake_ig, token=None)
    post = fake_ig.add_post("Kolom aduan")
    fake_ig.add_comment(post["code"], "pak_rt", "Pohon tumbang di Jl. Raya Darmo menutup jalan")
    connector(hub).poll_once()
    hub.run_worker()
    assert fake_ig.replies == []
    with hub.session() as s:
        out = s.exec(select(Message).where(Message.direction == "out")).one()
        ticket = s.exec(select(Ticket)).one()
    assert out.delivery_state == "manual" and ticket.number in out.text
    items = manual_outbox()
    assert [i["id"] for i in items] == [out.id] and items[0]["url"].endswith(f"/p/{post['code']}/")
    mark_manual_sent(out.id, actor="operator1")
    with hub.session() as s:
        done = s.get(Message, out.id)
        event = s.exec(select(Event).where(Event.action == "outbound.manual_sent")).one()
    assert done.delivery_state == "sent" and done.sent_at is not None and event.actor == "operator1"
    assert manual_outbox() == []
    with pytest.raises(ValueError):
        mark_manual_sent(out.id, actor="operator1")


def test_graph_api_errors(sqlite_hub, fake_ig):  # type: ignore[no-untyped-def]
    ig_hub(sqlite_hub, fake_ig)
    post = fake_ig.add_post("Kolom aduan")
    comment = fake_ig.add_comment(post["code"], "warga", "tolong")
    ctx = {"kind": "comment", "comment": {"id": comment["id"]}}
    conn = connector(sqlite_hub)
    out = Outgoing(to="warga", text="Terima kasih", context=ctx)
    fake_ig.graph_fail_next(400, 4, "(#4) Application request limit reached")
    with pytest.raises(RetryableError):
        conn.send(out)
    fake_ig.graph_fail_next(400, 190, "Error validating access token: Session has expired", subcode=463)
    assert conn.send(out).state == "manual"  # an expired token never loses the reply
    assert read_status()["state"] == "token"
    gone = Outgoing(to="warga", text="Terima kasih", context={"kind": "comment", "comment": {"id": "123"}})
    with pytest.raises(PermanentError):
        conn.send(gone)


def test_post_tagging_the_city_is_a_complaint_with_its_photo(sqlite_hub, fake_ig):  # type: ignore[no-untyped-def]
    ig_hub(sqlite_hub, fake_ig)
    fake_ig.add_post("Kolom aduan")
    tagged = fake_ig.add_tagged_post("budi_kenjeran", "@surabaya sampah menumpuk di TPS Kenjeran", b"\xff\xd8\xff")
    assert connector(sqlite_hub).poll_once().ingested == 1
    (msg,) = inbound(sqlite_hub)
    assert msg.external_id == f"post:{tagged['code']}" and msg.sender_display == "@budi_kenjeran"
    assert msg.attachments[0]["kind"] == "photo" and msg.attachments[0]["ref"].endswith(f"/media/{tagged['pk']}.jpg")
    assert connector(sqlite_hub).poll_once().ingested == 0


class TestInstagramContract(ConnectorContract):
    connector = InstagramConnector
    fixtures = "instagram"
    good_settings = {"enabled": True, "username": "surabaya", "session_file": "/var/lib/aduan/ig.session",
                     "graph_token": GRAPH_TOKEN}
    bad_settings = ({"enabled": True, "session_file": "/x"}, "username")

    def unreachable_connector(self):  # type: ignore[no-untyped-def]
        from tests.services import free_port

        return InstagramConnector(InstagramConnector.Settings(
            enabled=True, username="surabaya", session_file="/x", graph_token=GRAPH_TOKEN,
            graph_api_base=f"http://127.0.0.1:{free_port()}/v21.0"))

    def test_network_error_is_retryable(self) -> None:
        conn = self.unreachable_connector()
        with pytest.raises(RetryableError):
            conn.send(Outgoing(to="warga", text="Tes koneksi", context={"kind": "comment", "comment": {"id": "1"}}))



def test_console_shows_status_and_operators_clear_the_manual_outbox(sqlite_hub, fake_ig, monkeypatch):  # type: ignore[no-untyped-def]
    from core.web import create_app
    from tests.console_support import cheap_argon2, login, make_users

    hub = ig_hub(sqlite_hub, fake_ig, token=None)
    cheap_argon2(monkeypatch)
    make_users(hub)
    post = fake_ig.add_post("Kolom aduan")
    fake_ig.add_comment(post["code"], "pak_rt", "Sampah di TPS Jl. Menur belum diangkut")
    fake_ig.fail_next(429)
    assert connector(hub).poll_once().state == "rate_limited"
    assert connector(hub).poll_once().ingested == 1
    hub.run_worker()
    web = serve(create_app(hub.cfg))
    try:
        admin = login(web.url, "admin")
        status = admin.get("/console/admin/instagram").json()
        assert status["state"] == "ok" and status["manual_outbox"] == 1
        assert login(web.url, "viewer").get("/console/instagram/outbox").status_code == 403
        opr = login(web.url, "opr")
        (item,) = opr.get("/console/instagram/outbox").json()["items"]
        assert "ADU-" in item["text"] and item["url"].endswith(f"/p/{post['code']}/")
        assert opr.post(f"/console/instagram/outbox/{item['id']}/sent").status_code == 403  # no CSRF token
        assert opr.post_form(f"/console/instagram/outbox/{item['id']}/sent").json() == {"ok": True}
        assert opr.get("/console/instagram/outbox").json()["items"] == []
        assert opr.post_form(f"/console/instagram/outbox/{item['id']}/sent").status_code == 409
    finally:
        web.stop()
    with hub.session() as s:
        ev = s.exec(select(Event).where(Event.action == "outbound.manual_sent")).one()
    assert ev.actor == "opr"
