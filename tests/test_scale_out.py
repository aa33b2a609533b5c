"""Scale-out for real: the web process and two `aduan worker` processes on a real Redis server and a
real PostgreSQL, a few thousand messages through the webhook, each processed and acknowledged once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import yaml
from sqlalchemy import create_engine, text

from connectors.fakes import serve
from connectors.fakes.telegram import TelegramState, create_app as fake_app
from tests.conftest import ROOT, _create_pg_database, base_config
from tests.services import free_port, wait_http

TOKEN, SECRET = "77:SCALE-token", "scale-secret"
N = 1000


def complaint_texts() -> list[str]:
    texts = []
    for f in sorted((ROOT / "core" / "data" / "seed").glob("*.jsonl")):
        if f.name != "NONE.jsonl":
            texts += [json.loads(line)["text"] for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    return texts


def test_two_workers_and_web_share_the_work_exactly_once(tmp_path: Path, pg_server: str, redis_server: str) -> None:
    import redis

    redis.Redis.from_url(redis_server).flushdb()
    db_url = _create_pg_database(pg_server)
    fake = TelegramState(token=TOKEN)
    provider = serve(fake_app(fake))
    cfg = base_config()
    cfg["channels"]["telegram"].update(enabled=True, mode="webhook", api_base=provider.url, bot_rate_per_second=2000)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True))
    env = {**__import__("os").environ, "ADUAN_CONFIG": str(tmp_path / "config.yaml"), "ADUAN_DATA_DIR": str(tmp_path),
           "DATABASE_URL": db_url, "REDIS_URL": redis_server, "TELEGRAM_BOT_TOKEN": TOKEN,
           "TELEGRAM_SECRET_TOKEN": SECRET}
    subprocess.run([sys.executable, "-m", "core.cli", "migrate"], cwd=ROOT, env=env, check=True, capture_output=True)
    port = free_port()
    procs = [subprocess.Popen([sys.executable, "-m", "core.cli", "web", "--port", str(port)], cwd=ROOT, env=env,
                              stderr=subprocess.DEVNULL)]
    procs += [subprocess.Popen([sys.executable, "-m", "core.cli", "worker", "--name", f"scale-{i}"], cwd=ROOT,
                               env=env, stderr=subprocess.DEVNULL) for i in range(2)]
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/readyz", procs[0], timeout=30)
        texts = complaint_texts()
        updates = [fake.citizen_update(3_000_000 + i, f"{texts[i % len(texts)]} (laporan warga {i})") for i in range(N)]
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client, ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda u: client.post("/webhooks/telegram", json=u).status_code, updates))
            # a quarter of them delivered twice, as Telegram does after a timeout
            codes += list(pool.map(lambda u: client.post("/webhooks/telegram", json=u).status_code, updates[::4]))
        assert set(codes) == {200}
        engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
        deadline = time.monotonic() + 240
        while True:
            with engine.connect() as c:
                left = c.execute(text("SELECT count(*) FROM message WHERE direction='in' AND state <> 'processed'")).scalar_one()
                pending = c.execute(text("SELECT count(*) FROM message WHERE direction='out' "
                                         "AND delivery_state IN ('pending','sending','retry')")).scalar_one()
            if left == 0 and pending == 0:
                break
            assert time.monotonic() < deadline, f"{left} unprocessed, {pending} replies pending"
            time.sleep(0.5)
        with engine.connect() as c:
            inbound = c.execute(text("SELECT count(*) FROM message WHERE direction='in'")).scalar_one()
            per_reply = c.execute(text("SELECT reply_to_id, count(*) FROM message WHERE direction='out' "
                                       "GROUP BY reply_to_id HAVING count(*) > 1")).all()
            outbound = c.execute(text("SELECT count(*) FROM message WHERE direction='out'")).scalar_one()
            workers = c.execute(text("SELECT count(DISTINCT actor) FROM event")).scalar_one()
        assert inbound == N and per_reply == []
        per_chat = Counter(m["chat"]["id"] for m in fake.sent)
        assert len(fake.sent) == outbound and max(per_chat.values()) == 1  # nobody acknowledged twice
        assert outbound >= N * 0.9  # complaints are acknowledged (non-complaints get no reply)
        assert workers >= 1
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=20)
        provider.stop()


def test_bench_pipeline_reports_every_figure_on_real_redis_and_postgresql(pg_server: str, redis_server: str) -> None:
    """`aduan bench pipeline` against REDIS_URL/DATABASE_URL: every message through real workers, the
    figures the issue asks for printed for each worker count, RQ measured beside it."""
    import os

    import redis

    redis.Redis.from_url(redis_server).flushdb()
    env = {**os.environ, "REDIS_URL": redis_server, "DATABASE_URL": _create_pg_database(pg_server)}
    out = subprocess.run([sys.executable, "-m", "core.cli", "bench", "pipeline", "--messages", "200", "--workers", "1,2",
                          "--steady-rate", "50", "--steady-seconds", "2", "--json"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout)
    assert res["backend"] == {"redis": "REDIS_URL", "database": "DATABASE_URL"}
    assert [(r["workers"], r["messages"], len(r["peak_rss_mb"])) for r in res["runs"]] == [(1, 200, 1), (2, 200, 2)]
    for run, noop in zip(res["runs"], res["rq_noop"]):
        assert run["per_second"] > 0 and noop["per_second"] > 0 and all(mb > 50 for mb in run["peak_rss_mb"])
        assert run["ratio_vs_rq_noop"] == run["per_second"] / noop["per_second"]
    st = res["steady"]
    assert st["workers"] == min(2, os.cpu_count() or 1) and 0 < st["p50_ms"] <= st["p99_ms"]
    with create_engine(env["DATABASE_URL"]).connect() as c:  # every message processed, each acknowledged once
        left = c.execute(text("SELECT count(*) FROM message WHERE direction='in' AND state='stored'")).scalar_one()
        twice = c.execute(text("SELECT count(*) FROM (SELECT reply_to_id FROM message WHERE direction='out' "
                               "AND template LIKE 'ack%' GROUP BY reply_to_id HAVING count(*) > 1) d")).scalar_one()
    assert left == 0 and twice == 0


def test_bench_burst_stores_processes_and_acknowledges_every_webhook_once(tmp_path: Path) -> None:
    """`aduan bench burst`, small: a real `aduan up` on loopback takes signed Telegram webhooks from the
    load generator; every one is answered 200, processed, and its citizen acknowledged once."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    out = subprocess.run([sys.executable, "-m", "core.cli", "bench", "burst", "--messages", "300", "--seconds", "5",
                          "--workers", "1"], cwd=ROOT, env={**env, "ADUAN_DATA_DIR": str(tmp_path)},
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout)
    assert res["http_status"] == {"200": 300} and res["chats_acknowledged_twice"] == 0
    assert 0 < res["all_processed_after_seconds"] <= res["all_processed_and_acknowledged_after_seconds"]
    assert res["acknowledgements"] >= 290  # the few non-complaints of the text pool are not acknowledged


def test_two_workers_without_a_lock_make_the_same_cases_as_one(sqlite_hub, redis_server: str, tmp_path: Path) -> None:
    """Workers take no dedup lock; the tickets two of them open at the same moment for one problem are
    merged right after (core.dedup_race). The benchmark's stream (repeats, many reporters of one
    problem, re-deliveries) ends in exactly the cases and reporter counts that one worker makes."""
    import os
    import random
    from datetime import datetime, timezone

    import redis

    from core.bench import generate
    from core.intake import accept_many
    from core.message import InboundMessage
    from core.queue import enqueue_drain
    from tests.conftest import reset_caches

    stream = [InboundMessage.model_validate(m) for m in generate(1500, random.Random(5),
                                                                   datetime(2026, 11, 3, tzinfo=timezone.utc))]

    def run(workers: int) -> tuple[int, int, int]:
        for i in range(0, len(stream), 200):
            accept_many(stream[i:i + 200])
        for _ in range(workers):  # one drain each to start with: every worker takes batches at once
            enqueue_drain()
        procs = [subprocess.Popen([sys.executable, "-m", "core.cli", "worker", "--burst", "--queues", "inbound",
                                   "--name", f"same-{workers}-{i}-{os.getpid()}"], cwd=ROOT, env=dict(os.environ),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for i in range(workers)]
        for p in procs:
            assert p.wait(timeout=300) == 0, p.stderr.read().decode()[-2000:] if p.stderr else ""
        with create_engine(os.environ["DATABASE_URL"]).connect() as c:
            left = c.execute(text("SELECT count(*) FROM message WHERE direction='in' AND state='stored'")).scalar_one()
            live, reporters = c.execute(text("SELECT count(*), sum(reporters) FROM ticket WHERE status <> 'closed'")).one()
        assert left == 0
        return live, reporters, workers

    one = run(1)
    other = redis_server.rsplit("/", 1)[0] + "/1"  # a second hub: its own database and Redis
    redis.Redis.from_url(other).flushdb()
    sqlite_hub.mp.setenv("REDIS_URL", other)
    sqlite_hub.mp.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'two.db'}")
    sqlite_hub.configure()
    try:
        two = run(2)
    finally:
        redis.Redis.from_url(other).flushdb()
        reset_caches()
    assert one[:2] == two[:2] and one[0] > 500
