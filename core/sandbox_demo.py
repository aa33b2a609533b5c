"""`aduan up --sandbox --seed-demo`: a realistic day of complaints played in through the fake providers,
so a trainer or an evaluating city opens a console that already has tickets, duplicates and replies.

Each message travels the real path (webhook or poller), exactly as a citizen's would.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import httpx

log = logging.getLogger(__name__)

# (channel, sender, text, location) — a Surabaya day; some problems are reported more than once.
DAY: list[tuple[str, str, str, tuple[float, float] | None]] = [
    ("telegram", "5550201", "Selamat pagi min, lampu PJU di Jl. Rungkut Madya depan Masjid Al Muhajirin mati sejak tiga malam, gelap dan rawan", (-7.3290, 112.7810)),
    ("sms", "+6281230000101", "Sampah di TPS Jl. Bratang Gede sudah 5 hari tidak diangkut, bau sekali dan meluber ke jalan", None),
    ("whatsapp", "+6281230000102", "Air PDAM di Kel. Ketintang mati sejak subuh, mohon info kapan mengalir lagi", None),
    ("twitter", "arek_suroboyo", "jalan berlubang besar di Jl. Ahmad Yani depan Royal Plaza, sudah ada motor jatuh tadi pagi", None),
    ("instagram", "ibu.wiwik", "Min, parkir liar di depan Pasar Pucang bikin macet tiap pagi, jukirnya minta 5 ribu", None),
    ("telegram", "5550202", "Lampu jalan Jl. Rungkut Madya masih mati min, depan masjid gelap total", (-7.3291, 112.7812)),
    ("sms", "+6281230000103", "Ada pohon tumbang di Jl. Raya Darmo dekat Taman Bungkul, menutup separuh jalan", None),
    ("whatsapp", "+6281230000104", "Traffic light perempatan Jl. Kertajaya - Jl. Manyar mati, lalu lintas semrawut", None),
    ("twitter", "cak_no", "@surabaya PKL di trotoar Jl. Tunjungan makin banyak, pejalan kaki terpaksa turun ke jalan", None),
    ("instagram", "dimas.sby", "Got di Jl. Kapas Krampung mampet, kalau hujan sebentar langsung banjir", None),
    ("telegram", "5550203", "Puskesmas Kenjeran antrean sampai siang, loket baru buka jam 9", None),
    ("sms", "+6281230000105", "Sampah TPS Bratang Gede belum diangkut juga, sudah hampir seminggu", None),
    ("whatsapp", "+6281230000106", "Ada ular kobra masuk rumah warga di Jl. Lebak Jaya gang 3, mohon bantuan damkar", (-7.2435, 112.7705)),
    ("twitter", "nanda_r", "Suroboyo Bus rute Purabaya telat terus, halte Jl. Darmo atapnya bocor", None),
    ("instagram", "pak.harjo", "Pengurusan KK di kelurahan Gubeng katanya sistem error terus, sudah 3 kali datang", None),
    ("telegram", "5550204", "Terima kasih min, lampu sudah menyala lagi", None),
    ("sms", "+6281230000107", "Air PDAM keruh dan bau di Perum Wisma Kedung Asem sejak kemarin", None),
    ("whatsapp", "+6281230000108", "Jalan berlubang Jl. Ahmad Yani depan Royal Plaza makin lebar, bahaya untuk motor", None),
    ("twitter", "lia_ketintang", "air PDAM Ketintang mati lagi dari pagi, warga belum bisa mandi", None),
    ("instagram", "ibu.wiwik", "Update: jukir di Pasar Pucang tetap minta 5 ribu tadi siang", None),
]


def play(sb: Any, pause: float | None = None) -> int:
    """Send the day's messages through the fakes (skipping channels this sandbox lacks); returns how many."""
    pause = float(os.environ.get("ADUAN_DEMO_PAUSE", "1.5")) if pause is None else pause
    sent = 0
    for channel, sender, text, loc in DAY:
        if channel not in sb.channels():
            continue
        lat, lon = loc if loc else (None, None)
        try:
            sb.send(channel, sender, text, lat=lat, lon=lon)
            sent += 1
        except Exception:  # noqa: BLE001 - the demo goes on; the hub's own logs say why
            log.exception("demo message on %s not delivered", channel)
        time.sleep(pause)
    return sent


def play_later(sb: Any) -> threading.Thread:
    """Wait until the hub answers, then play the day in the background."""
    def run() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{sb.hub_url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        n = play(sb)
        print(f"Sandbox demo: {n} complaints played in; open the console to see them.", flush=True)

    thread = threading.Thread(target=run, name="sandbox-demo", daemon=True)
    thread.start()
    return thread
