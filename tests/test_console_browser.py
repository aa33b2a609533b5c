"""The console in a real browser: Playwright driving Debian's Chromium against the hub's app on
loopback (real Redis, SQLite, a real RQ worker and the fake Telegram Bot API).

Also saves docs/screenshots/inbox.png and docs/screenshots/ticket.png for the README.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlmodel import select

from core.console.models import Label
from core.models import Ticket
from tests.console_support import SECRET, PASSWORD, add_ticket, cheap_argon2, drain, start_console

SHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@pytest.fixture(autouse=True)
def _fast_hashes(monkeypatch):  # type: ignore[no-untyped-def]
    cheap_argon2(monkeypatch)



@pytest.fixture(scope="module")
def browser() -> Browser:  # type: ignore[misc]
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        yield b
        b.close()


@pytest.fixture
def console(sqlite_hub):  # type: ignore[no-untyped-def]
    c = start_console(sqlite_hub)
    yield c
    c.stop()


def _page(browser: Browser, console, username: str, width: int = 1366, height: int = 768) -> Page:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": width, "height": height}, base_url=console.url, locale="id-ID")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
    page.js_errors = errors  # type: ignore[attr-defined]
    page.goto("/console")
    expect(page).to_have_url(f"{console.url}/console/login?next=/console")
    page.get_by_label("Nama pengguna").fill(username)
    page.get_by_label("Kata sandi").fill(PASSWORD)
    page.get_by_role("button", name="Masuk").click()
    expect(page.get_by_test_id("whoami")).to_contain_text(username.upper())
    return page


def test_each_role_logs_in_and_sees_only_what_it_may(browser, console):  # type: ignore[no-untyped-def]
    viewer = _page(browser, console, "viewer")
    expect(viewer).to_have_url(f"{console.url}/console")  # a viewer landing on the inbox is refused
    expect(viewer.get_by_role("heading", name="Akses ditolak")).to_be_visible()
    viewer.goto("/console/overview")
    expect(viewer.get_by_role("heading", name="Ringkasan")).to_be_visible()
    assert "Rungkut" not in viewer.content() and "6281234561234" not in viewer.content()

    admin = _page(browser, console, "admin")
    admin.get_by_role("link", name="Log audit").click()
    expect(admin.locator("table.audit")).to_contain_text("auth.login")

    dsd = _page(browser, console, "dsd")
    rows = dsd.locator("tr[data-ticket]")
    expect(rows).to_have_count(3)  # PJU, Darmo and the HTML one: DSDABM's only
    expect(dsd.locator("table.inbox")).not_to_contain_text(console.numbers["sampah"])
    expect(dsd.locator("table.inbox")).to_contain_text("628123****1234")
    dsd.get_by_role("link", name=console.numbers["pju"]).click()
    expect(dsd.get_by_role("heading", name=console.numbers["pju"])).to_be_visible()
    resp = dsd.goto(f"/console/tickets/{console.tickets['sampah']}")  # typing another OPD's URL
    assert resp is not None and resp.status == 403
    expect(dsd.get_by_role("heading", name="Akses ditolak")).to_be_visible()
    for p in (viewer, admin, dsd):
        assert p.js_errors == []  # type: ignore[attr-defined]  (CSP-clean: htmx runs, nothing blocked)
        p.context.close()


def test_reply_typed_in_console_reaches_fake_telegram_and_state_updates_live(browser, console, sqlite_hub):  # type: ignore[no-untyped-def]
    for m in range(1, 40):  # a realistic queue for the screenshot
        add_ticket(sqlite_hub, ["DINKES", "DISHUB", "DLH", "PDAM"][m % 4],
                   ["Antrean puskesmas Kenjeran lama sekali, obat habis", "Lampu lalu lintas di Jl. Ahmad Yani mati",
                    "Pohon tumbang menutup jalan di Jl. Dharmahusada", "Air PDAM keruh dan bau di Kelurahan Mulyorejo"][m % 4],
                   routed_minutes_ago=m * 3, address=f"+62813{m:08d}")
    page = _page(browser, console, "opr")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "inbox.png"))
    page.get_by_role("link", name=console.numbers["pju"]).click()
    page.get_by_label("Balasan", exact=True).fill("Terima kasih, petugas PJU menuju Jl. Rungkut Asri Timur hari ini.")
    page.get_by_role("button", name="Kirim balasan").click()
    reply = page.locator("article.msg.out", has_text="petugas PJU menuju")
    expect(reply.get_by_test_id("delivery")).to_have_text("menunggu")
    drain(sqlite_hub)
    sent = [m for m in console.fake.messages_to(6281234561234) if "petugas PJU" in m["text"]]
    assert len(sent) == 1
    expect(reply.get_by_test_id("delivery")).to_have_text("terkirim", timeout=15_000)  # HTMX polling, no reload
    page.screenshot(path=str(SHOTS / "ticket.png"), full_page=False)
    assert page.js_errors == []  # type: ignore[attr-defined]
    page.context.close()


def _reroute(page: Page, ticket_id: int, opd: str, reason: str) -> None:
    """Re-route a ticket from its page, as an operator does; the header shows the new OPD."""
    page.goto(f"/console/tickets/{ticket_id}")
    page.get_by_label("OPD", exact=True).select_option(opd)
    page.locator("#reroute-reason").fill(reason)
    page.get_by_role("button", name="Alihkan", exact=True).click()
    expect(page.locator("h1 .badge").first).to_have_text(opd)


def test_reroute_and_merge_from_the_ticket_page(browser, console, sqlite_hub):  # type: ignore[no-untyped-def]
    page = _page(browser, console, "opr")
    _reroute(page, console.tickets["sampah"], "SATPOLPP", "TPS liar di trotoar")
    page.goto(f"/console/tickets/{console.tickets['xss']}")
    page.get_by_label("Nomor laporan tujuan").fill(console.numbers["darmo"])
    page.locator("#merge-reason").fill("lubang yang sama")
    page.get_by_role("button", name="Gabungkan", exact=True).click()
    expect(page).to_have_url(f"{console.url}/console/tickets/{console.tickets['darmo']}?ok=1")
    expect(page.locator("article.msg.in")).to_have_count(2)
    with sqlite_hub.session() as s:
        assert s.get(Ticket, console.tickets["sampah"]).opd_code == "SATPOLPP"
        assert s.get(Ticket, console.tickets["xss"]).status == "closed"
        assert {lab.source for lab in s.exec(select(Label)).all()} == {"rerouted", "merge"}
    page.context.close()


def test_citizen_script_and_html_are_shown_as_text(browser, console):  # type: ignore[no-untyped-def]
    page = _page(browser, console, "opr", width=390, height=844)  # on a phone
    page.goto(f"/console/tickets/{console.tickets['xss']}")
    text = page.locator("article.msg.in .text").first
    expect(text).to_contain_text("<script>alert('xss')</script><b>Jalan berlubang</b>")
    expect(text).to_contain_text("<img src=x onerror=alert(1)>")
    assert page.locator("article.msg.in .text b, article.msg.in .text img, article.msg.in script").count() == 0
    assert page.js_errors == []  # type: ignore[attr-defined]  (no alert dialog ever opened)
    # keyboard: the skip link is the first stop and the reply box is reachable and labelled
    page.keyboard.press("Tab")
    expect(page.locator("a.skip")).to_be_focused()
    expect(page.get_by_label("Balasan", exact=True)).to_be_editable()
    page.context.close()


def test_admin_switches_a_channel_off_and_on_again(browser, console):  # type: ignore[no-untyped-def]
    console.fake.webhook = {"url": f"{console.url}/webhooks/telegram", "secret_token": SECRET}
    page = _page(browser, console, "admin")
    page.get_by_role("link", name="Kanal").click()
    row = page.locator('tr[data-channel="telegram"]')
    expect(row.get_by_test_id("state")).to_contain_text("aktif")
    row.get_by_role("button", name="Matikan telegram").click()
    expect(row.get_by_test_id("state")).to_contain_text("dimatikan")
    expect(row.locator("td.source")).to_contain_text("basis data")
    update = console.fake.citizen_update(5556001, "Banjir setinggi lutut di Jl. Kupang Jaya")
    assert console.fake.deliver(update).status_code == 503  # the provider is told to come back later
    row.get_by_role("button", name="Nyalakan telegram").click()
    expect(row.get_by_test_id("state")).to_contain_text("aktif")
    expect(row.locator("td.source")).to_contain_text("config.yaml")
    assert console.fake.deliver(update).status_code == 200
    assert page.js_errors == []  # type: ignore[attr-defined]
    page.context.close()


def test_admin_adds_an_opd_that_operators_can_route_to_until_it_is_retired(browser, console):  # type: ignore[no-untyped-def]
    admin = _page(browser, console, "admin")
    admin.get_by_role("link", name="Katalog OPD").click()
    admin.get_by_label("Kode").fill("DISBUDPAR")
    admin.get_by_label("Nama", exact=True).fill("Dinas Kebudayaan dan Pariwisata")
    admin.get_by_label("Kata kunci").fill("kebun binatang, museum")
    admin.get_by_role("button", name="Tambah OPD").click()
    row = admin.locator('tr[data-opd="DISBUDPAR"]')
    expect(row).to_contain_text("Dinas Kebudayaan dan Pariwisata")
    expect(row.locator("td.source")).to_contain_text("basis data")
    opr = _page(browser, console, "opr")
    _reroute(opr, console.tickets["sampah"], "DISBUDPAR", "TPS di area wisata")
    row.get_by_role("button", name="Nonaktifkan DISBUDPAR").click()
    expect(admin.locator('tr[data-opd="DISBUDPAR"]').get_by_test_id("opd-state")).to_contain_text("nonaktif")
    opr.goto(f"/console/tickets/{console.tickets['pju']}")
    expect(opr.locator('#reroute-opd option[value="DISBUDPAR"]')).to_have_count(0)
    expect(opr.locator('#reroute-opd option[value="DLH"]')).to_have_count(1)
    for p in (admin, opr):
        p.context.close()


def test_a_mentioned_officer_sees_the_badge_and_reads_the_note(browser, console):  # type: ignore[no-untyped-def]
    opr = _page(browser, console, "opr")
    opr.goto(f"/console/tickets/{console.tickets['darmo']}")
    opr.get_by_label("Tambah catatan").fill("@dsd @dlh lubangnya makin besar, mohon dicek hari ini")
    opr.get_by_role("button", name="Tambah catatan", exact=True).click()
    expect(opr.get_by_role("status")).to_contain_text("Tidak diberi tahu (tidak berhak melihat laporan ini): @dlh")
    expect(opr.get_by_test_id("not-delivered")).to_contain_text("@dlh")
    dlh = _page(browser, console, "dlh")
    expect(dlh.get_by_test_id("mentions-badge")).to_have_count(0)
    dsd = _page(browser, console, "dsd")
    expect(dsd.get_by_test_id("mentions-badge")).to_have_text("1")
    dsd.get_by_test_id("mentions-link").click()
    expect(dsd.locator("table.mentions")).to_contain_text("lubangnya makin besar")
    dsd.get_by_role("link", name=console.numbers["darmo"]).click()
    expect(dsd).to_have_url(f"{console.url}/console/tickets/{console.tickets['darmo']}#notes")
    expect(dsd.get_by_test_id("mentions-badge")).to_have_count(0)
    for p in (opr, dlh, dsd):
        assert p.js_errors == []  # type: ignore[attr-defined]
        p.context.close()
