"""The policy dashboard, exports and monthly report, over real HTTP with console logins: every number
shown is checked against the database for a seeded data set (SQLite and PostgreSQL), exports carry
no phone numbers for roles that must not see them, and the chart library is served locally."""

from __future__ import annotations

import io
import re
from collections import Counter
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from openpyxl import load_workbook
from sqlmodel import select
from typer.testing import CliRunner

from core.models import Ticket
from tests.console_support import cheap_argon2, login, start_console

WIB = timezone(timedelta(hours=7))
NOV = "dari=2026-11-01&sampai=2026-11-30"
# (opd, channel, kecamatan, kelurahan, day, status, reporters, phone)
SEED = [
    ("DSDABM", "telegram", "Rungkut", "Rungkut Kidul", datetime(2026, 11, 3, 9, tzinfo=WIB), "resolved", 5, "+6281234500001"),
    ("DSDABM", "sms", "Rungkut", "Rungkut Kidul", datetime(2026, 11, 4, 10, tzinfo=WIB), "routed", 1, "+6281234500002"),
    ("DSDABM", "whatsapp", "Gayungan", "Ketintang", datetime(2026, 11, 20, 8, tzinfo=WIB), "responded", 2, "+6281234500003"),
    ("DLH", "telegram", "Sukolilo", "Keputih", datetime(2026, 11, 5, 7, tzinfo=WIB), "routed", 3, "+6281234500004"),
    ("DLH", "twitter", "Sukolilo", "Keputih", datetime(2026, 11, 28, 23, 30, tzinfo=WIB), "resolved", 1, "+6281234500005"),
    ("DLH", "telegram", "Sukolilo", "Keputih", datetime(2026, 10, 12, 9, tzinfo=WIB), "closed", 1, "+6281234500006"),
    ("DISHUB", "sms", "Gayungan", "Ketintang", datetime(2026, 10, 15, 9, tzinfo=WIB), "resolved", 1, "+6281234500007"),
    ("DISHUB", "sms", "Gayungan", "Ketintang", datetime(2026, 10, 16, 9, tzinfo=WIB), "routed", 1, "+6281234500008"),
    (None, "telegram", None, None, datetime(2026, 11, 30, 23, 59, tzinfo=WIB), "new", 1, "+6281234500009"),
    ("DSDABM", "telegram", "Rungkut", "Rungkut Kidul", datetime(2026, 12, 1, 0, 1, tzinfo=WIB), "routed", 1, "+6281234500010"),
]


def seed(hub) -> None:  # type: ignore[no-untyped-def]
    from core.intake import get_or_create_contact

    with hub.session() as s:
        for i, (opd, ch, kec, kel, at, status, rep, phone) in enumerate(SEED):
            c = get_or_create_contact(s, ch, phone, f"Warga {i}")
            at = at.astimezone(timezone.utc)
            t = Ticket(channel=ch, contact_id=c.id, opd_code=opd, status=status, kecamatan=kec, kelurahan=kel,
                       street="Jl. Rungkut Madya" if kel == "Rungkut Kidul" else None, reporters=rep,
                       subject=f"Saluran mampet dan jalan berlubang, hubungi {phone.replace('+62', '0')}",
                       created_at=at, routed_at=at if opd else None, updated_at=at,
                       responded_at=at + timedelta(minutes=30 + 40 * i) if status in ("responded", "resolved") else None,
                       resolved_at=at + timedelta(hours=5) if status == "resolved" else None,
                       feedback_at=at + timedelta(hours=2 + i) if status in ("responded", "resolved") else None)
            s.add(t)
            s.flush()
            t.number = f"ADU-2026-{t.id:06d}"
        s.commit()


@pytest.fixture(autouse=True)
def _fast_hashes(monkeypatch):  # type: ignore[no-untyped-def]
    cheap_argon2(monkeypatch)


@pytest.fixture
def site(hub):  # type: ignore[no-untyped-def]
    c = start_console(hub, complaints={})
    seed(hub)
    yield c
    c.stop()


def _table(html: str, testid: str) -> dict[str, list[str]]:
    body = html.split(f'data-testid="{testid}"', 1)[1].split("</table>", 1)[0]
    out = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S):
        head = re.search(r"<th scope=\"row\">(.*?)</th>", row, re.S)
        if head:
            out[head.group(1).strip()] = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    return out


def _nov(hub) -> list[Ticket]:  # type: ignore[no-untyped-def]
    lo, hi = datetime(2026, 11, 1, tzinfo=WIB), datetime(2026, 12, 1, tzinfo=WIB)
    with hub.session() as s:
        return list(s.exec(select(Ticket).where(Ticket.created_at >= lo, Ticket.created_at < hi)).all())


def test_dashboard_numbers_match_the_database(hub, site):  # type: ignore[no-untyped-def]
    viewer = login(site.url, "viewer")
    page = viewer.get(f"/console/analitik?{NOV}")
    assert page.status_code == 200
    html = page.text
    nov = _nov(hub)
    assert int(re.search(r'data-testid="total">(\d+)<', html).group(1)) == len(nov) == 6
    assert int(re.search(r'data-testid="open">(\d+)<', html).group(1)) == \
        sum(t.status in ("new", "routed", "responded") for t in nov)
    for dim, attr in (("opd", "opd_code"), ("channel", "channel"), ("kecamatan", "kecamatan"), ("kelurahan", "kelurahan")):
        shown = {k: int(v[0]) for k, v in _table(html, f"by-{dim}").items()}
        want = Counter(getattr(t, attr) or ("(triase)" if dim == "opd" else "(tidak diketahui)") for t in nov)
        assert shown == dict(want), dim

    from core.sla import report

    with hub.session() as s:
        expected = {r.opd: r for r in report(s, hub.cfg, since=datetime(2026, 11, 1, tzinfo=WIB))
                    if r.opd != "DSDABM"}  # report() has no end date: DSDABM has a December ticket
    sla = _table(html, "sla")
    assert set(sla) == {"DSDABM", "DLH"}
    for code, r in expected.items():
        row = sla[code]
        assert int(row[0]) == r.tickets and row[1] == f"{r.within * 100:.0f}%"
        assert row[2] == ("-" if r.median_response_min is None else f"{r.median_response_min:.1f}")
        assert row[4] == ("-" if r.median_feedback_h is None else f"{r.median_feedback_h:.1f}")
    assert sla["DSDABM"][0] == "3"

    backlog = {k: sum(int(n) for n in v) for k, v in _table(html, "backlog").items()}
    assert backlog == dict(Counter(t.opd_code or "(triase)" for t in nov if t.status in ("new", "routed", "responded")))
    mom = _table(html, "mom")
    assert mom["DLH"][:2] == ["2", "1"] and mom["DISHUB"][:2] == ["0", "2"] and mom["DSDABM"][:3] == ["3", "0", "+3"]
    clusters = html.split('data-testid="clusters"', 1)[1].split("</table>", 1)[0]
    assert re.findall(r"<td class=\"num\">(\d+)</td>", clusters) == ["5", "3", "2"]  # biggest clusters first
    assert "Jl. Rungkut Madya, Rungkut Kidul" in _table(html, "places")
    terms = _table(html, "terms")
    assert terms["saluran"] == ["6"] and terms["mampet"] == ["6"]
    assert "081234500001" not in html and "+6281234500001" not in html  # no phone numbers on the dashboard

    svg = html.split('data-testid="map"', 1)[1].split("</svg>", 1)[0]
    points = dict(re.findall(r'data-kelurahan="([^"]+)" data-count="(\d+)"', svg))
    assert points == {"Rungkut Kidul": "2", "Keputih": "2", "Ketintang": "1"}
    assert "http://" not in svg and "https://" not in svg  # no tiles

    srcs = re.findall(r'<script[^>]+src="([^"]+)"', html)
    assert "/console/static/vendor/chart.umd.min.js" in srcs and all(s.startswith("/") for s in srcs)
    lib = httpx.get(site.url + "/console/static/vendor/chart.umd.min.js")
    assert lib.status_code == 200 and "Chart" in lib.text[:5000]

    dlh = login(site.url, "dsd").get(f"/console/analitik?{NOV}&opd=DLH").text  # an officer is pinned to their OPD
    assert set(_table(dlh, "by-opd")) == {"DSDABM"}


def test_exports_hide_phone_numbers_from_roles_without_personal_access(sqlite_hub):  # type: ignore[no-untyped-def]
    site = start_console(sqlite_hub, complaints={})
    try:
        seed(sqlite_hub)
        with sqlite_hub.session() as s:  # a citizen's text that a spreadsheet would run as a formula
            t = s.exec(select(Ticket).where(Ticket.channel == "twitter")).one()
            t.subject = "=HYPERLINK(\"http://evil.example\",\"klik\")"
            s.commit()
        nov = _nov(sqlite_hub)
        anon = httpx.get(f"{site.url}/console/analitik/ekspor.csv?{NOV}", follow_redirects=False)
        assert anon.status_code == 303 and "/console/login" in anon.headers["location"]
        for who in ("viewer", "dsd", "opr"):
            c = login(site.url, who)
            text = c.get(f"/console/analitik/ekspor.csv?{NOV}").text.lstrip("\ufeff")
            lines = [ln for ln in text.splitlines() if ln]
            xlsx = c.get(f"/console/analitik/ekspor.xlsx?{NOV}")
            assert xlsx.status_code == 200 and xlsx.headers["content-type"].startswith(
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
            rows = list(load_workbook(io.BytesIO(xlsx.content)).active.iter_rows(values_only=True))
            dump = text + " ".join(str(v) for r in rows for v in r)
            cells = [v for r in rows for v in r if isinstance(v, str)] + text.split(",")
            assert not any(v.lstrip('"').startswith("=") for v in cells), who
            if who == "opr":
                assert "Kontak pelapor" in lines[0] and "sms:+6281234500002" in text
                assert len(lines) - 1 == len(nov) and len(rows) - 1 == len(nov)
                assert "081234500001" in dump  # operators see the full complaint text
            else:
                assert "Kontak pelapor" not in lines[0] and rows[0][-1] == "Selesai (WIB)"
                assert not re.search(r"(\+62|08)\d{8,}", dump), who
                want = [t for t in nov if who == "viewer" or t.opd_code == "DSDABM"]
                assert len(lines) - 1 == len(want) and len(rows) - 1 == len(want)
                assert sorted(r[0] for r in rows[1:]) == sorted(t.number for t in want)
    finally:
        site.stop()


def test_monthly_report_from_console_and_cli(sqlite_hub, tmp_path):  # type: ignore[no-untyped-def]
    site = start_console(sqlite_hub, complaints={})
    try:
        seed(sqlite_hub)
        page = login(site.url, "viewer").get("/console/analitik/laporan?bulan=2026-11").text
        assert "November 2026" in page and 'data-opd="DSDABM"' in page and 'data-opd="DLH"' in page
        assert re.search(r'data-testid="total-DSDABM">3<', page) and re.search(r'data-testid="total-DLH">2<', page)
        assert "081234500001" not in page and "/console/static/report.css" in page
        assert login(site.url, "viewer").get("/console/analitik/laporan?bulan=2026-13").status_code == 400
        officer = login(site.url, "dlh").get("/console/analitik/laporan?bulan=2026-11&opd=DSDABM").text
        assert 'data-opd="DLH"' in officer and 'data-opd="DSDABM"' not in officer

        from core.cli import app

        out = tmp_path / "nov.html"
        r = CliRunner().invoke(app, ["report", "monthly", "--month", "2026-11", "--opd", "DSDABM", "--out", str(out)])
        assert r.exit_code == 0, r.output
        html = out.read_text(encoding="utf-8")
        assert "<style>" in html and "@media print" in html  # standalone: prints to PDF without the server
        assert re.search(r'data-testid="total-DSDABM">3<', html) and 'data-opd="DLH"' not in html
        bad = CliRunner().invoke(app, ["report", "monthly", "--month", "Nov"])
        assert bad.exit_code == 2 and "YYYY-MM" in bad.output
    finally:
        site.stop()


def test_charts_draw_in_a_real_browser_with_local_assets_only(sqlite_hub):  # type: ignore[no-untyped-def]
    """Chromium (Playwright) under the console's CSP: the charts draw, nothing is fetched off-host."""
    from playwright.sync_api import expect, sync_playwright

    from tests.console_support import PASSWORD

    site = start_console(sqlite_hub, complaints={})
    try:
        seed(sqlite_hub)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(base_url=site.url)
            errors: list[str] = []
            hosts: set[str] = set()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
            page.on("request", lambda r: hosts.add(r.url.split("/")[2]))
            page.goto("/console/login?next=/console/analitik")
            page.get_by_label("Nama pengguna").fill("viewer")
            page.get_by_label("Kata sandi").fill(PASSWORD)
            page.get_by_role("button", name="Masuk").click()
            page.goto(f"/console/analitik?{NOV}")
            expect(page.get_by_test_id("total")).to_have_text("6")
            page.wait_for_function("() => window.Chart && Chart.getChart('chart-volume') && Chart.getChart('chart-opd')")
            n_sets = page.evaluate("() => Chart.getChart('chart-volume').data.datasets.length")
            opd_bars = page.evaluate("() => Chart.getChart('chart-opd').data.datasets[0].data")
            browser.close()
        assert n_sets == 4  # telegram, sms, whatsapp, twitter in November
        assert sorted(opd_bars) == [1, 2, 3]
        assert hosts == {site.url.split("/")[2]}, hosts
        assert not [e for e in errors if not e.endswith("/favicon.ico")], errors
    finally:
        site.stop()
