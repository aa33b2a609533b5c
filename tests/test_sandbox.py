"""Sandbox mode: `aduan up --sandbox --seed-demo` as a real process tree (web, pollers, workers, fake
providers), the citizen phone page driven in real Chromium, on every channel that has a fake."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sklearn
from sqlmodel import func, select

from core.models import Message, Ticket
from core.sandbox_demo import DAY
from tests.services import free_port, wait_http

ROOT = Path(__file__).resolve().parents[1]
PHOTO = Path(sklearn.__file__).parent / "datasets" / "images" / "flower.jpg"
TICKET = re.compile(r"ADU-\d{4}-\d{6}")
COMPLAINTS = {
    "telegram": "Lampu PJU di Jl. Rungkut Asri Timur mati sejak Senin, gelap sekali",
    "sms": "Sampah di TPS Jl. Ngagel Jaya sudah empat hari tidak diangkut",
    "whatsapp": "Air PDAM di Kel. Wonokromo mati sejak pagi",
    "twitter": "Traffic light perempatan Jl. Mayjen Sungkono mati, macet parah",
    "instagram": "Pohon tumbang di Jl. Dr. Soetomo menutup jalan",
}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture
def sandbox_hub(sqlite_hub):  # type: ignore[no-untyped-def]
    """`aduan up --sandbox --seed-demo` on the test's Redis and a fresh SQLite database."""
    port = free_port()
    env = {**sqlite_hub.env(), "ADUAN_DEMO_PAUSE": "0.1", "PYTHONUNBUFFERED": "1"}
    log = (sqlite_hub.tmp / "up.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "up", "--sandbox", "--seed-demo", "--workers", "1",
                             "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/sandbox", proc, timeout=60, why=lambda: (sqlite_hub.tmp / "up.log").read_text())
    yield sqlite_hub, url, proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log.close()


def test_citizen_phone_on_every_channel_gets_the_ticket_number(sandbox_hub):  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect, sync_playwright

    hub, url, proc = sandbox_hub
    channels = httpx.get(f"{url}/sandbox").text
    available = [c for c in COMPLAINTS if f'value="{c}"' in channels]
    assert {"telegram", "instagram"} <= set(available)  # the fakes this tree always has
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(45_000)
        page.goto(f"{url}/sandbox")
        for channel in available:
            page.select_option("#channel", channel)  # the page reloads for that channel's default sender
            page.wait_for_url(re.compile(f"channel={channel}"))
            sender = page.input_value("#sender")
            page.fill("#text", COMPLAINTS[channel])
            page.click("#send")
            expect(page.locator("[data-testid=citizen-message]").last).to_contain_text(COMPLAINTS[channel])
            reply = page.locator("[data-testid=hub-message]", has_text=TICKET).first
            expect(reply).to_be_visible()  # the acknowledgement arrived in the citizen's conversation
            number = TICKET.search(reply.inner_text()).group(0)
            with hub.session() as s:
                assert s.exec(select(Ticket).where(Ticket.number == number)).one() is not None, (channel, sender)

        # a photo and a location, as a citizen on Telegram sends them
        page.select_option("#channel", "telegram")
        page.wait_for_url(re.compile("channel=telegram"))
        page.fill("#text", "Jalan berlubang besar di depan Puskesmas Mulyorejo")
        page.set_input_files("#photo", str(PHOTO))
        page.fill("#lat", "-7.2660")
        page.fill("#lon", "112.7810")
        page.click("#send")
        expect(page.locator("[data-testid=citizen-message]").last).to_contain_text("📍 -7.266, 112.781")
        expect(page.locator("[data-testid=hub-message]", has_text=TICKET)).to_have_count(2)
        with hub.session() as s:
            photo_msg = s.exec(select(Message).where(Message.text.contains("Puskesmas Mulyorejo"))).one()
        assert photo_msg.attachments[0]["kind"] == "photo" and photo_msg.location["lat"] == pytest.approx(-7.266)

        page.fill("#text", "")
        page.click("#send")  # nothing to send: a clear message, nothing delivered
        expect(page.locator("[role=alert]")).to_contain_text("Tulis pesan atau lampirkan foto")
        browser.close()

    # --seed-demo: the day's complaints went in through the same fakes and became tickets
    demo = [d for d in DAY if d[0] in available]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with hub.session() as s:
            processed = s.exec(select(func.count()).select_from(Message).where(
                Message.direction == "in", Message.state == "processed")).one()
        if processed >= len(demo) + len(available):
            break
        time.sleep(0.5)
    assert processed >= len(demo) + len(available)
    with hub.session() as s:
        channels_seen = set(s.exec(select(Message.channel).where(Message.direction == "in")).all())
        duplicates = s.exec(select(func.count()).select_from(Message).where(Message.dedup.is_not(None))).one()
    assert channels_seen == set(available) and duplicates >= 1

    proc.send_signal(signal.SIGTERM)  # a clean stop of the whole tree, fakes included
    assert proc.wait(timeout=20) == 0
