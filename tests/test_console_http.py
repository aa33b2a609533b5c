"""The console over real HTTP (httpx -> uvicorn on loopback), real Redis, SQLite and PostgreSQL:
role isolation on every route, the inbox, and every ticket action with its audit trail."""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from core.console.models import CannedResponse, Label
from core.models import Event, Message, Ticket
from tests.console_support import cheap_argon2, add_ticket, login, start_console


@pytest.fixture(autouse=True)
def _fast_hashes(monkeypatch):  # type: ignore[no-untyped-def]
    cheap_argon2(monkeypatch)



@pytest.fixture
def console(sqlite_hub):  # type: ignore[no-untyped-def]
    c = start_console(sqlite_hub)
    yield c
    c.stop()


@pytest.fixture
def console_any_db(hub):  # type: ignore[no-untyped-def]
    c = start_console(hub)
    yield c
    c.stop()


def _routes() -> list[tuple[str, str]]:
    """Every console route, read from the console's routers (new routes are covered automatically)."""
    from core.console import admin, channels_admin, inbox, login as login_routes, mentions, opds_admin, ticket

    out = []
    for module in (login_routes, inbox, ticket, admin, channels_admin, opds_admin, mentions):
        for r in module.router.routes:
            for m in sorted(set(r.methods) - {"HEAD"}):  # type: ignore[attr-defined]
                out.append((m, r.path))  # type: ignore[attr-defined]
    return out


def _fill(path: str, ticket_id: int, user_id: int) -> str:
    return path.replace("{ticket_id}", str(ticket_id)).replace("{user_id}", str(user_id)).replace("{name}", "telegram") \
        .replace("{message_id}", "1").replace("{index}", "0").replace("{code}", "DLH").replace("{mention_id}", "1")


def test_every_console_route_enforces_roles_on_the_server(console, sqlite_hub):  # type: ignore[no-untyped-def]
    routes = _routes()
    assert len(routes) >= 20
    open_routes = {("GET", "/console/login"), ("POST", "/console/login"), ("POST", "/console/lang"),
                   ("POST", "/console/logout")}
    dlh_ticket = console.tickets["sampah"]
    clients = {name: login(console.url, name) for name in ("viewer", "dsd", "opr")}
    anon = login.__globals__["Client"](base_url=console.url, follow_redirects=False)
    checked = 0
    for method, path in routes:
        if (method, path) in open_routes:
            continue
        url = _fill(path, dlh_ticket, 1)
        # Anonymous: GET goes to the login page, anything else is refused.
        r = anon.request(method, url)
        assert (r.status_code == 303 and "/console/login" in r.headers["location"]) if method == "GET" \
            else r.status_code in (401, 403), (method, path, r.status_code)
        # A viewer sees dashboards only; an officer of DSDABM nothing of DLH's ticket nor admin pages.
        for who in ("viewer", "dsd"):
            if who == "viewer" and path == "/console/overview":
                continue
            if who == "dsd" and path in ("/console", "/console/inbox/rows", "/console/overview", "/console/bulk",
                                         "/console/mentions", "/console/mentions/read"):
                continue
            if who == "dsd" and path == "/console/mentions/{mention_id}":  # only one's own mentions
                assert clients[who].get(url).status_code == 404
                continue
            c = clients[who]
            r = c.get(url) if method == "GET" else c.post_form(url, {"text": "x", "opd": "DSDABM", "reason": "x"})
            assert r.status_code == 403, (who, method, path, r.status_code)
            checked += 1
        if path.startswith("/console/admin"):
            c = clients["opr"]
            r = c.get(url) if method == "GET" else c.post_form(url, {})
            assert r.status_code == 403, ("operator", method, path)
    assert checked >= 30
    # and nothing was changed by all those refused POSTs
    with sqlite_hub.session() as s:
        t = s.get(Ticket, dlh_ticket)
        assert t.opd_code == "DLH" and t.status == "routed"
        assert s.exec(select(Event).where(Event.actor.in_(["viewer", "dsd", "opr"]),
                                          Event.action.startswith("ticket."))).all() == []


def test_officer_inbox_shows_own_opd_only_with_masked_numbers(console):  # type: ignore[no-untyped-def]
    dsd = login(console.url, "dsd")
    page = dsd.get("/console?status=all").text
    assert console.numbers["pju"] in page and console.numbers["darmo"] in page
    assert console.numbers["sampah"] not in page
    # Asking for another OPD in the URL or searching its text changes nothing.
    assert console.numbers["sampah"] not in dsd.get("/console?opd=DLH&status=all").text
    assert console.numbers["sampah"] not in dsd.get("/console/inbox/rows?q=Keputih").text
    assert "628123****1234" in page and "6281234561234" not in page
    ticket_page = dsd.get(f"/console/tickets/{console.tickets['pju']}").text
    assert "628123****1234" in ticket_page and "6281234561234" not in ticket_page
    # an operator sees every OPD and the full number
    op_page = login(console.url, "opr").get("/console?status=all").text
    assert console.numbers["sampah"] in op_page and "6281234561234" in op_page


def test_inbox_paginates_searches_and_sorts_by_sla_urgency(console, sqlite_hub):  # type: ignore[no-untyped-def]
    # 230 open tickets routed between 1 and 230 minutes ago: the oldest are past the 60-minute SLA.
    ids = {m: add_ticket(sqlite_hub, "DINKES", f"antrean puskesmas nomor {m}", routed_minutes_ago=m,
                         address=f"+628111{m:07d}") for m in range(1, 231)}
    op = login(console.url, "opr")
    first = op.get("/console?opd=DINKES").text
    rows = re.findall(r'data-ticket="(ADU-\d{4}-\d+)"', first)
    assert len(rows) == 50 and "Halaman 1 dari 5 (230 laporan)" in first
    assert rows[0] == f"ADU-2026-{ids[230]:06d}"  # most overdue first
    assert "terlambat 2 jam 50 menit" in first or "terlambat 2 jam 49 menit" in first
    last = op.get("/console?opd=DINKES&page=5").text
    assert len(re.findall(r'data-ticket="', last)) == 30 and f"ADU-2026-{ids[1]:06d}" in last
    assert "59 menit" in last or "58 menit" in last  # the newest has most time left
    for q, expected in ((f"ADU-2026-{ids[77]:06d}", ids[77]), ("nomor 123", ids[123]), ("+6281110000042", ids[42])):
        found = re.findall(r'href="/console/tickets/(\d+)"', op.get("/console/inbox/rows", params={"q": q}).text)
        assert found == [str(expected)], q
    newest = op.get("/console?opd=DINKES&sort=new").text
    assert re.findall(r'data-ticket="(ADU-\d{4}-\d+)"', newest)[0] == f"ADU-2026-{ids[1]:06d}"
    # the triage queue: tickets without an OPD
    triage_id = add_ticket(sqlite_hub, None, "mohon dibantu urusan kampung kami")
    triage = op.get("/console?triage=1").text
    assert f"/console/tickets/{triage_id}\"" in triage and console.numbers["pju"] not in triage
    # the list polls itself every 10 s
    assert 'hx-trigger="every 10s"' in first


def test_reply_from_console_reaches_citizen_on_telegram(console_any_db, hub):  # type: ignore[no-untyped-def]
    c = console_any_db
    dsd = login(c.url, "dsd")
    tid = c.tickets["pju"]
    r = dsd.post_form(f"/console/tickets/{tid}/reply", {"text": "Petugas kami meluncur hari ini, terima kasih."})
    assert r.status_code == 303
    pending = dsd.get(f"/console/tickets/{tid}/conversation").text
    assert "Petugas kami meluncur hari ini" in pending and "menunggu" in pending
    hub.run_worker()
    sent = [m for m in c.fake.messages_to(6281234561234) if "meluncur" in m["text"]]
    assert len(sent) == 1 and sent[0]["text"] == "Petugas kami meluncur hari ini, terima kasih."
    with hub.session() as s:
        first_in = s.exec(select(Message).where(Message.ticket_id == tid, Message.direction == "in")).first()
        out = s.exec(select(Message).where(Message.author == "dsd")).one()
        t = s.get(Ticket, tid)
        ev = s.exec(select(Event).where(Event.action == "ticket.reply")).one()
    assert sent[0]["reply_to_message"]["message_id"] == int(first_in.external_id.split(":")[-1])
    assert out.delivery_state == "sent" and out.template == "operator_reply"
    assert t.status == "responded" and t.responded_at is not None  # an officer's first reply
    assert ev.actor == "dsd" and ev.data["before"]["status"] == "routed" and ev.data["after"]["status"] == "responded"
    assert "terkirim" in dsd.get(f"/console/tickets/{tid}/conversation").text


def test_reroute_feeds_classifier_audits_and_tells_citizen(console, sqlite_hub):  # type: ignore[no-untyped-def]
    op = login(console.url, "opr")
    tid = console.tickets["sampah"]
    assert op.post_form(f"/console/tickets/{tid}/reroute", {"opd": "DISHUB", "reason": ""}).status_code == 400
    r = op.post_form(f"/console/tickets/{tid}/reroute", {"opd": "SATPOLPP", "reason": "TPS liar di bahu jalan"})
    assert r.status_code == 303
    sqlite_hub.run_worker()
    with sqlite_hub.session() as s:
        t = s.get(Ticket, tid)
        label = s.exec(select(Label)).one()
        ev = s.exec(select(Event).where(Event.action == "ticket.reroute")).one()
    assert t.opd_code == "SATPOLPP" and t.status == "routed"
    assert (label.opd, label.source, label.actor) == ("SATPOLPP", "rerouted", "opr") and "Keputih" in label.text
    assert ev.data["before"]["opd_code"] == "DLH" and ev.data["after"]["opd_code"] == "SATPOLPP"
    told = console.fake.messages_to(5552002)[-1]["text"]
    assert console.numbers["sampah"] in told and "Satuan Polisi Pamong Praja" in told
    # the DLH officer lost it, the SATPOLPP queue has it
    assert login(console.url, "dlh").get(f"/console/tickets/{tid}").status_code == 403


def test_merge_then_split(console, sqlite_hub):  # type: ignore[no-untyped-def]
    op = login(console.url, "opr")
    src, dst = console.tickets["xss"], console.tickets["darmo"]
    r = op.post_form(f"/console/tickets/{src}/merge", {"target": console.numbers["darmo"], "reason": "lubang yang sama"})
    assert r.status_code == 303 and r.headers["location"].startswith(f"/console/tickets/{dst}")
    page = op.get(f"/console/tickets/{dst}").text
    assert "Raya Darmo" in page and "Jalan berlubang&lt;/b&gt;" in page  # both reporters' messages
    with sqlite_hub.session() as s:
        assert s.get(Ticket, src).status == "closed" and s.get(Ticket, dst).reporters == 2
        moved = s.exec(select(Message).where(Message.ticket_id == dst, Message.direction == "in",
                                             Message.text.contains("Kertajaya"))).one()
        assert s.exec(select(Label).where(Label.source == "merge")).one().opd == "DSDABM"
    r = op.post_form(f"/console/tickets/{dst}/split", {"message_id": str(moved.id), "reason": "lokasi beda"})
    assert r.status_code == 303
    new_id = int(re.search(r"/console/tickets/(\d+)", r.headers["location"]).group(1))
    with sqlite_hub.session() as s:
        assert s.get(Message, moved.id).ticket_id == new_id
        assert s.get(Ticket, dst).reporters == 1
        assert s.exec(select(Label).where(Label.source == "split")).one().ticket_id == new_id
    assert "Kertajaya" in op.get(f"/console/tickets/{new_id}").text
    # an officer may not merge
    assert login(console.url, "dsd").post_form(f"/console/tickets/{dst}/merge", {"target": "x"}).status_code == 403


def test_merge_can_be_undone_from_the_history(console, sqlite_hub):  # type: ignore[no-untyped-def]
    opr = login(console.url, "opr")
    src, dst = console.tickets["xss"], console.tickets["darmo"]
    opr.post_form(f"/console/tickets/{src}/merge", {"target": console.numbers["darmo"], "reason": "sama"})
    with sqlite_hub.session() as s:
        ev = s.exec(select(Event).where(Event.action == "dedup.merge", Event.ticket_id == dst)).one()
    page = opr.get(f"/console/tickets/{dst}").text
    assert f'name="event_id" value="{ev.id}"' in page
    r = opr.post_form(f"/console/tickets/{dst}/unmerge", {"event_id": str(ev.id), "reason": "ternyata beda"})
    assert r.status_code == 303 and r.headers["location"].startswith(f"/console/tickets/{src}")
    with sqlite_hub.session() as s:
        assert s.get(Ticket, src).status == "routed" and s.get(Ticket, dst).reporters == 1
        assert s.exec(select(Message).where(Message.ticket_id == src, Message.direction == "in")).first() is not None
    assert f'name="event_id" value="{ev.id}"' not in opr.get(f"/console/tickets/{dst}").text
    again = opr.post_form(f"/console/tickets/{dst}/unmerge", {"event_id": str(ev.id)})
    assert again.status_code == 400 and "sudah dibatalkan" in again.text


def test_status_lifecycle_notes_spam_and_bulk(console, sqlite_hub):  # type: ignore[no-untyped-def]
    op = login(console.url, "opr")
    pju, darmo, sampah = console.tickets["pju"], console.tickets["darmo"], console.tickets["sampah"]
    r = op.post_form(f"/console/tickets/{pju}/status", {"status": "rejected", "reason": ""})
    assert r.status_code == 400 and "Alasan penolakan wajib diisi" in r.text
    assert op.post_form(f"/console/tickets/{pju}/status", {"status": "resolved", "message": "Lampu sudah diganti."}).status_code == 303
    assert op.post_form(f"/console/tickets/{pju}/status", {"status": "closed"}).status_code == 303
    assert op.post_form(f"/console/tickets/{pju}/status", {"status": "responded"}).status_code == 400
    op.post_form(f"/console/tickets/{darmo}/note", {"text": "@dsd tolong cek lokasinya, @nobody juga"})
    assert op.post_form(f"/console/tickets/{sampah}/spam").status_code == 303
    sqlite_hub.run_worker()
    with sqlite_hub.session() as s:
        t = s.get(Ticket, pju)
        assert t.status == "closed" and t.resolved_at and t.closed_at
        note = s.exec(select(Event).where(Event.action == "note")).one()
        assert note.data["mentions"] == ["dsd"]
        assert s.get(Ticket, sampah).status == "rejected"
        assert s.exec(select(Label).where(Label.reason == "spam")).one().opd is None
    assert "Lampu sudah diganti." in console.fake.messages_to(6281234561234)[-1]["text"]
    assert "@dsd tolong cek lokasinya" in op.get(f"/console/tickets/{darmo}").text
    # bulk: the DLH officer cannot touch DSDABM tickets; the operator re-routes two at once
    dlh = login(console.url, "dlh")
    r = dlh.post("/console/bulk", data={"csrf_token": dlh.csrf, "ids": [str(darmo)], "op": "status:resolved"})
    assert r.status_code == 403
    x1, x2 = add_ticket(sqlite_hub, "DLH", "pohon tumbang 1"), add_ticket(sqlite_hub, "DLH", "pohon tumbang 2")
    r = op.post("/console/bulk", data={"csrf_token": op.csrf, "ids": [str(x1), str(x2)], "op": "reroute:DAMKAR",
                                       "reason": "evakuasi pohon"})
    assert r.status_code == 303
    with sqlite_hub.session() as s:
        assert {s.get(Ticket, x1).opd_code, s.get(Ticket, x2).opd_code} == {"DAMKAR"}
        assert s.get(Ticket, darmo).status == "routed"


def test_canned_responses_and_admin_users(console, sqlite_hub):  # type: ignore[no-untyped-def]
    admin = login(console.url, "admin")
    r = admin.post_form("/console/admin/canned", {"title": "Sudah ditindaklanjuti", "opd_code": "DSDABM",
                                                  "text": "Laporan {ticket} sedang diperbaiki petugas."})
    assert r.status_code == 303
    admin.post_form("/console/admin/canned", {"title": "DLH saja", "opd_code": "DLH", "text": "khusus DLH"})
    with sqlite_hub.session() as s:
        dsd_item = s.exec(select(CannedResponse).where(CannedResponse.opd_code == "DSDABM")).one()
        dlh_item = s.exec(select(CannedResponse).where(CannedResponse.opd_code == "DLH")).one()
    dsd = login(console.url, "dsd")
    tid = console.tickets["pju"]
    page = dsd.get(f"/console/tickets/{tid}").text
    assert "Sudah ditindaklanjuti" in page and "DLH saja" not in page
    filled = dsd.get(f"/console/tickets/{tid}/reply-text", params={"canned_id": dsd_item.id}).text
    assert f"Laporan {console.numbers['pju']} sedang diperbaiki" in filled
    assert "khusus DLH" not in dsd.get(f"/console/tickets/{tid}/reply-text", params={"canned_id": dlh_item.id}).text
    # users: create, weak password refused, disable ends the session at once
    assert admin.post_form("/console/admin/users", {"username": "baru", "role": "operator",
                                                    "password": "pendek"}).status_code == 400
    assert admin.post_form("/console/admin/users", {"username": "baru", "role": "operator",
                                                    "password": "cukup-panjang-1"}).status_code == 303
    baru = login(console.url, "baru", "cukup-panjang-1")
    assert baru.get("/console").status_code == 200
    from core.console.models import User

    with sqlite_hub.session() as s:
        uid = s.exec(select(User).where(User.username == "baru")).one().id
    assert admin.post_form(f"/console/admin/users/{uid}", {"op": "disable"}).status_code == 303
    assert baru.get("/console").status_code == 303  # back to the login page
    audit = admin.get("/console/admin/audit").text
    assert "user.disable" in audit and "canned.save" in audit and "user.create" in audit


def test_citizen_html_is_shown_as_text_and_english_is_available(console):  # type: ignore[no-untyped-def]
    op = login(console.url, "opr")
    page = op.get(f"/console/tickets/{console.tickets['xss']}").text
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "<b>Jalan" not in page
    assert "Kotak masuk" in page
    r = op.post_form("/console/lang", {"lang": "en"}, headers={"Referer": f"{console.url}/console"})
    assert r.status_code == 303
    assert "Inbox" in op.get("/console").text and "Kotak masuk" not in op.get("/console").text


def test_admin_settings_win_over_config_yaml_and_are_validated_like_it(console, sqlite_hub):  # type: ignore[no-untyped-def]
    admin = login(console.url, "admin")
    page = admin.get("/console/admin/settings").text
    assert 'data-key="sla.opd_response_minutes"' in page and "config.yaml" in page
    r = admin.post_form("/console/admin/settings", {"key": "sla.opd_response_minutes", "value": "0"})
    assert r.status_code == 400 and "sla.opd_response_minutes: must be greater than 0" in r.text
    assert admin.post_form("/console/admin/settings", {"key": "hub.public_url", "value": "x"}).status_code == 400
    tid = add_ticket(sqlite_hub, "DINKES", "antrean puskesmas lama", routed_minutes_ago=20)
    opr = login(console.url, "opr")
    row = re.search(rf'data-ticket="ADU-2026-{tid:06d}".*?</tr>', opr.get("/console?opd=DINKES").text, re.S).group(0)
    assert "39 menit" in row or "40 menit" in row  # 60-minute budget from config.yaml
    assert admin.post_form("/console/admin/settings", {"key": "sla.per_opd.DINKES.opd_response_minutes",
                                                       "value": "30"}).status_code == 303
    admin.post_form("/console/admin/settings", {"key": "templates.routed",
                                                "value": "Laporan {ticket} kini ditangani {opd} (diubah admin)."})
    row = re.search(rf'data-ticket="ADU-2026-{tid:06d}".*?</tr>', opr.get("/console?opd=DINKES").text, re.S).group(0)
    assert "9 menit" in row or "10 menit" in row  # the database's 30 minutes win
    dlh = add_ticket(sqlite_hub, "DLH", "sampah menumpuk", routed_minutes_ago=45)  # 15 minutes left
    order = re.findall(r'data-ticket="([^"]+)"', opr.get("/console").text)
    assert order.index(f"ADU-2026-{tid:06d}") < order.index(f"ADU-2026-{dlh:06d}")  # 10 left beats 15 left
    page = admin.get("/console/admin/settings").text
    source = re.search(r'data-key="sla.per_opd.DINKES.opd_response_minutes".*?</tr>', page, re.S).group(0)
    assert "basis data" in source and "admin" in source
    # the console's own messages use the overridden template
    opr.post_form(f"/console/tickets/{console.tickets['sampah']}/reroute", {"opd": "SATPOLPP", "reason": "liar"})
    sqlite_hub.run_worker()
    assert console.fake.messages_to(5552002)[-1]["text"].endswith("(diubah admin).")
    assert admin.post_form("/console/admin/settings", {"key": "sla.per_opd.DINKES.opd_response_minutes",
                                                       "op": "reset"}).status_code == 303
    row = re.search(rf'data-ticket="ADU-2026-{tid:06d}".*?</tr>', opr.get("/console?opd=DINKES").text, re.S).group(0)
    assert "39 menit" in row or "40 menit" in row
    with sqlite_hub.session() as s:
        saved = s.exec(select(Event).where(Event.action == "settings.save")).all()
    assert [e.data["key"] for e in saved] == ["sla.per_opd.DINKES.opd_response_minutes", "templates.routed"]
    assert saved[0].data["after"] == 30 and saved[0].actor == "admin"


def test_mentioned_filter_lists_tickets_whose_notes_mention_me(console):  # type: ignore[no-untyped-def]
    opr = login(console.url, "opr")
    opr.post_form(f"/console/tickets/{console.tickets['darmo']}/note", {"text": "@dsd mohon dicek hari ini"})
    opr.post_form(f"/console/tickets/{console.tickets['pju']}/note", {"text": "catatan tanpa sebutan dsd"})
    mine = login(console.url, "dsd").get("/console?mine=1&status=all").text
    assert re.findall(r'data-ticket="([^"]+)"', mine) == [console.numbers["darmo"]]


def test_channels_page_shows_credentials_webhook_and_tests_the_connection(console, sqlite_hub):  # type: ignore[no-untyped-def]
    admin = login(console.url, "admin")
    page = admin.get("/console/admin/channels").text
    row = re.search(r'data-channel="telegram".*?</tr>', page, re.S).group(0)
    assert "token: terisi" in row and "secret_token: terisi" in row
    assert "http://127.0.0.1:8000/webhooks/telegram" in row  # hub.public_url + the connector's route
    assert "TEST-token" not in page and "s3cret" not in page  # never the secret itself
    r = admin.post_form("/console/admin/channels/telegram/test")
    assert r.status_code == 200 and "telegram: @AduanKotaBot" in r.text  # getMe on the fake Bot API
    console.servers[0].stop()  # the provider goes away
    r = admin.post_form("/console/admin/channels/telegram/test")
    assert r.status_code == 502 and 'data-testid="check-result"' in r.text
    with sqlite_hub.session() as s:
        assert [e.data["ok"] for e in s.exec(select(Event).where(Event.action == "channel.test")).all()] == [True, False]


def _png() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"\x00\xff\x00\x00" * 1
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_photo_evidence_is_shown_only_to_who_may_see_the_ticket(console, sqlite_hub):  # type: ignore[no-untyped-def]
    from core import media

    data = _png()
    evidence = media.store(data, media.sniff(data))
    tid = console.tickets["pju"]
    with sqlite_hub.session() as s:
        msg = s.exec(select(Message).where(Message.ticket_id == tid, Message.direction == "in")).first()
        msg.attachments = [{"kind": "photo", "ref": "AgACAgQAAxkBAAIB", "evidence": evidence},
                           {"kind": "photo", "ref": "AgACAgQAAxkBAAIC", "evidence": {"path": "../config.yaml", "mime": "image/png"}},
                           {"kind": "photo", "ref": "AgACAgQAAxkBAAID", "evidence": {"refused": "not an image (declared image/jpeg)"}}]
        s.add(msg)
        s.commit()
        mid = msg.id
    dsd = login(console.url, "dsd")
    page = dsd.get(f"/console/tickets/{tid}").text
    assert f'<img src="/console/tickets/{tid}/media/{mid}/0"' in page and "not an image (declared image/jpeg)" in page
    r = dsd.get(f"/console/tickets/{tid}/media/{mid}/0")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content == data
    assert dsd.get(f"/console/tickets/{tid}/media/{mid}/1").status_code == 404  # no path tricks
    assert dsd.get(f"/console/tickets/{tid}/media/{mid}/9").status_code == 404
    assert login(console.url, "dlh").get(f"/console/tickets/{tid}/media/{mid}/0").status_code == 403


def test_failed_reply_can_be_sent_again(console, sqlite_hub):  # type: ignore[no-untyped-def]
    opr = login(console.url, "opr")
    tid = console.tickets["darmo"]
    console.fake.fail_next(400, "Bad Request: chat not found", retry_after=None)
    opr.post_form(f"/console/tickets/{tid}/reply", {"text": "Mohon kirim foto lubangnya."})
    sqlite_hub.run_worker()
    with sqlite_hub.session() as s:
        out = s.exec(select(Message).where(Message.author == "opr")).one()
    assert out.delivery_state == "failed"
    convo = opr.get(f"/console/tickets/{tid}/conversation").text
    assert "gagal" in convo and "Chat not found" in convo and f'name="message_id" value="{out.id}"' in convo
    assert login(console.url, "dlh").post_form(f"/console/tickets/{tid}/resend", {"message_id": str(out.id)}).status_code == 403
    assert opr.post_form(f"/console/tickets/{tid}/resend", {"message_id": str(out.id)}).status_code == 303
    sqlite_hub.run_worker()
    assert [m["text"] for m in console.fake.messages_to(5552004)][-1] == "Mohon kirim foto lubangnya."
    assert "terkirim" in opr.get(f"/console/tickets/{tid}/conversation").text
    again = opr.post_form(f"/console/tickets/{tid}/resend", {"message_id": str(out.id)})
    assert again.status_code == 400  # a sent reply is never sent twice from here


def test_admin_blocks_a_sender_whose_next_message_opens_nothing(console, sqlite_hub):  # type: ignore[no-untyped-def]
    from datetime import datetime, timezone

    from core.db import session_scope
    from core.intake import store
    from core.message import InboundMessage
    from core.models import Contact
    from core.pipeline import process

    spam = add_ticket(sqlite_hub, "DLH", "promo pinjol cair cepat", address="6289999999999")
    op = login(console.url, "opr")
    assert op.post_form(f"/console/tickets/{spam}/block", {"reason": "spam berulang"}).status_code == 403
    admin = login(console.url, "admin")
    assert admin.post_form(f"/console/tickets/{spam}/block", {"reason": ""}).status_code == 400
    assert admin.post_form(f"/console/tickets/{spam}/block", {"reason": "spam berulang"}).status_code == 303
    msg = InboundMessage(channel="telegram", external_id="after-block", sender="6289999999999",
                         text="jalan rusak parah di Jl. Kenjeran", received_at=datetime.now(timezone.utc))
    with session_scope() as s:
        row, _ = store(s, msg)
        out = process(s, sqlite_hub.cfg, row.id)
    assert out.status == "blocked" and out.ticket is None and out.outbound == []
    with sqlite_hub.session() as s:
        assert s.exec(select(Contact).where(Contact.address == "6289999999999")).one().blocked
        ev = s.exec(select(Event).where(Event.action == "contact.block")).one()
        assert ev.actor == "admin" and ev.data["after"]["reason"] == "spam berulang"
