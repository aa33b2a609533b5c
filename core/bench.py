"""`aduan bench pipeline`: end-to-end throughput and latency of the hub, with plain RQ measured beside it.

Without REDIS_URL / DATABASE_URL the benchmark runs on a throw-away embedded Redis and SQLite in a
temporary data dir; with them it uses those servers (point them at scratch instances: it writes
benchmark messages). Worker processes are real `aduan worker` processes on the inbound queue.
"""

from __future__ import annotations

import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

CHANNELS = ("telegram", "sms", "twitter", "instagram")
INTAKE_BATCH = 100
PLACES = ["Jl. Kenjeran", "Jl. Rungkut Asri Timur", "Jl. Ngagel Jaya", "gg 5 Jl. Kalijudan", "Jl. Mulyosari",
          "Jl. Tambak Wedi", "Jl. Raya Darmo", "Jl. Demak", "Jl. Kapas Krampung", "Jl. Ketintang Baru"]


@dataclass
class Run:
    workers: int
    messages: int
    seconds: float
    per_second: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    peak_rss_mb: list[float] = field(default_factory=list)
    intake_per_second: float | None = None


def texts() -> list[str]:
    """Realistic Indonesian complaints: the shipped seed corpus (written by the project)."""
    out: list[str] = []
    seed = Path(__file__).parent / "data" / "seed"
    for f in seed.iterdir():
        if f.name.endswith(".jsonl") and f.name != "NONE.jsonl":
            out += [json.loads(line)["text"] for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    return out or ["jalan berlubang di depan sekolah", "lampu jalan mati di gang 3", "sampah belum diangkut"]


def generate(n: int, rng: random.Random, start: datetime) -> list[dict]:
    """n messages across the four channels; ~5% provider re-deliveries and ~5% citizens repeating."""
    pool = texts()
    run = f"{rng.getrandbits(32):08x}"  # external ids unique per run: a later run is not a re-delivery of this one
    msgs: list[dict] = []
    for i in range(n):
        r = rng.random()
        if msgs and r < 0.05:
            msgs.append(dict(rng.choice(msgs)))  # the same payload delivered again
            continue
        if msgs and r < 0.10:
            prev = rng.choice(msgs)
            msgs.append({**prev, "external_id": f"{run}-{i}", "received_at": (start + timedelta(milliseconds=i)).isoformat()})
            continue
        text = rng.choice(pool)
        if rng.random() < 0.5:
            text = f"{text} di {rng.choice(PLACES)} RT {rng.randint(1, 12)}"
        msgs.append({"channel": rng.choice(CHANNELS), "external_id": f"{run}-{i}", "sender": f"bench-{rng.randint(1, n)}",
                     "text": text, "received_at": (start + timedelta(milliseconds=i)).isoformat()})
    return msgs


def _env(base: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["ADUAN_DATA_DIR"] = str(base)
    cfg_src = Path(os.environ.get("ADUAN_CONFIG", "config.yaml"))
    raw = yaml.safe_load(cfg_src.read_text(encoding="utf-8")) if cfg_src.exists() else {}
    for block in (raw.get("channels") or {}).values():
        block["enabled"] = False  # acknowledgements are queued, not sent, in the benchmark
    (base / "config.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    env["ADUAN_CONFIG"] = str(base / "config.yaml")
    if not env.get("REDIS_URL"):
        from core.redisconn import ensure_embedded

        env["REDIS_URL"] = ensure_embedded(base)
    return env


def _start_workers(n: int, env: dict[str, str], queues: str = "inbound") -> list[subprocess.Popen]:
    """Worker processes whose logs go to worker-N.log in the benchmark's data dir."""
    procs, names = [], []
    for i in range(n):
        names.append(f"bench-{os.getpid()}-{i}-{time.time_ns()}")
        with open(Path(env["ADUAN_DATA_DIR"]) / f"worker-{i}.log", "ab") as log:
            procs.append(subprocess.Popen([sys.executable, "-m", "core.cli", "worker", "--queues", queues, "--name",
                                           names[-1]], env=env, stdout=subprocess.DEVNULL, stderr=log))
    _wait_registered(names, procs)
    return procs


def _wait_registered(names: list[str], procs: list[subprocess.Popen], timeout: float = 120) -> None:
    """The clock starts once every worker has loaded its models and registered with RQ: the figures
    are the hub's steady state, not its start-up (which `aduan up` reports on its own)."""
    from rq import Worker

    from core.redisconn import get_redis

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            _stop(procs)
            raise RuntimeError("a benchmark worker exited at start; see worker-N.log in the data dir")
        if set(names) <= {w.name for w in Worker.all(connection=get_redis())}:
            return
        time.sleep(0.1)
    _stop(procs)
    raise RuntimeError(f"the workers did not register with Redis within {timeout:.0f} s")


def _peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _stop(procs: list[subprocess.Popen]) -> list[float]:
    peaks = [_peak_rss_mb(p.pid) for p in procs]
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    return peaks


def _processed(engine, after: int = 0) -> int:  # type: ignore[no-untyped-def]
    """Processed citizen messages with ids above `after` (a primary-key range: polling every 50 ms
    must not scan the whole table on the cores the workers are measured on)."""
    from sqlalchemy import text

    with engine.connect() as c:
        return c.execute(text("SELECT count(*) FROM message WHERE id > :a AND direction='in' AND state<>'stored'"),
                         {"a": after}).scalar_one()


def _last_id(engine) -> int:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    with engine.connect() as c:
        return c.execute(text("SELECT coalesce(max(id), 0) FROM message")).scalar_one()


def pipeline_run(workers: int, msgs: list[dict], env: dict[str, str], progress=None) -> Run:  # type: ignore[no-untyped-def]
    """Workers running; every message through intake; wait until all are processed."""
    from core.db import get_engine
    from core.intake import accept_many
    from core.message import InboundMessage

    parsed = [InboundMessage.model_validate(m) for m in msgs]
    unique = len({(m.channel, m.external_id) for m in parsed})
    procs = _start_workers(workers, env)
    engine = get_engine()
    after = _last_id(engine)
    t0 = time.perf_counter()
    for i in range(0, len(parsed), INTAKE_BATCH):  # as a poller hands over a page of messages
        accept_many(parsed[i:i + INTAKE_BATCH])
        if progress:
            progress(i, len(parsed) * 2)
    intake_s = time.perf_counter() - t0
    last, last_change = -1, time.monotonic()
    while (done := _processed(engine, after)) < unique:
        if done != last:
            last, last_change = done, time.monotonic()
        elif time.monotonic() - last_change > 60:
            _stop(procs)
            raise RuntimeError(f"{unique - done} message(s) not processed after 60 s without progress; "
                               f"see `aduan jobs failed` and the worker logs in {env['ADUAN_DATA_DIR']}")
        if progress:
            progress(len(parsed) + done * len(parsed) // unique, len(parsed) * 2)
        time.sleep(0.05)
    elapsed = time.perf_counter() - t0
    run = Run(workers, len(parsed), elapsed, len(parsed) / elapsed, peak_rss_mb=_stop(procs))
    run.intake_per_second = len(parsed) / intake_s
    return run


WARMUP_S = 2


def steady_latency(rate: int, seconds: int, msgs: list[dict], env: dict[str, str], workers: int) -> tuple[float, float]:
    """p50/p99 ms from intake (stored) to acknowledgement queued, at a steady arrival rate, after
    WARMUP_S seconds at that rate that are not counted (each worker's first batches compile its
    SQL statements and load its Redis scripts)."""
    from sqlalchemy import text

    from core.db import get_engine
    from core.intake import accept
    from core.message import InboundMessage

    procs = _start_workers(workers, env)
    first_id = None
    t0 = time.perf_counter()
    for i, m in enumerate(msgs[: rate * (seconds + WARMUP_S)]):
        target = t0 + i / rate
        if (delay := target - time.perf_counter()) > 0:
            time.sleep(delay)
        res = accept(InboundMessage.model_validate(m))
        if i == rate * WARMUP_S:
            first_id = res.message_id
    time.sleep(2)
    _stop(procs)
    with get_engine().connect() as c:
        rows = c.execute(text(
            "SELECT i.created_at, o.created_at FROM message o JOIN message i ON o.reply_to_id = i.id "
            "WHERE o.direction='out' AND i.id >= :f"), {"f": first_id}).all()
    lat = sorted((_dt(b) - _dt(a)).total_seconds() * 1000 for a, b in rows)
    if not lat:
        return float("nan"), float("nan")
    return statistics.median(lat), lat[min(len(lat) - 1, int(len(lat) * 0.99))]


def _dt(v) -> datetime:  # type: ignore[no-untyped-def]
    return v if isinstance(v, datetime) else datetime.fromisoformat(str(v))


def rq_noop_run(workers: int, n: int, env: dict[str, str]) -> Run:
    """Plain RQ: one no-op job per message, same Redis, same number of worker processes."""
    from rq import Queue
    from rq.serializers import JSONSerializer

    from core.redisconn import get_redis

    q = Queue("bench-noop", connection=get_redis(), serializer=JSONSerializer)
    q.empty()
    procs = _start_workers(workers, env, queues="bench-noop")
    t0 = time.perf_counter()
    for i in range(n):
        q.enqueue("workers.jobs.noop", i, result_ttl=0)
    while q.count or q.started_job_registry.count:
        if any(p.poll() is not None for p in procs):
            _stop(procs)
            raise RuntimeError("a benchmark worker exited; run `aduan worker --queues bench-noop` to see why")
        time.sleep(0.02)
    elapsed = time.perf_counter() - t0
    return Run(workers, n, elapsed, n / elapsed, peak_rss_mb=_stop(procs))


def bench(messages: int, workers: list[int], steady_rate: int = 200, steady_seconds: int = 10,
          steady_workers: int = 0, progress=None) -> dict:  # type: ignore[no-untyped-def]
    """Run the whole benchmark in a scratch data dir (or on REDIS_URL/DATABASE_URL) and return figures."""
    tmp = Path(tempfile.mkdtemp(prefix="aduan-bench-"))
    logging.getLogger("core.intake").setLevel(logging.WARNING)  # not a line per generated message
    env = _env(tmp)
    os.environ.update({k: env[k] for k in ("ADUAN_DATA_DIR", "ADUAN_CONFIG", "REDIS_URL")})
    from core.config import get_config
    from core.db import migrate

    get_config.cache_clear()
    migrate()
    rng = random.Random(7)
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    result: dict = {"backend": {"redis": "embedded" if "unix://" in env["REDIS_URL"] else "REDIS_URL",
                                "database": "sqlite" if not os.environ.get("DATABASE_URL") else "DATABASE_URL"},
                    "runs": [], "rq_noop": []}
    for w in workers:
        msgs = generate(messages, rng, start + timedelta(days=len(result["runs"]) * 30))
        run = pipeline_run(w, msgs, env, progress)
        result["runs"].append(asdict(run))
        result["rq_noop"].append(asdict(rq_noop_run(w, messages, env)))
    # More workers than cores only take turns (docs/deploy.md): the latency run uses one per core by default.
    steady_w = steady_workers or min(max(workers), os.cpu_count() or 1)
    p50, p99 = steady_latency(steady_rate, steady_seconds, generate(steady_rate * (steady_seconds + WARMUP_S), rng,
                                                                    start + timedelta(days=300)), env, steady_w)
    result["steady"] = {"rate": steady_rate, "seconds": steady_seconds, "workers": steady_w, "p50_ms": p50, "p99_ms": p99}
    for run, noop in zip(result["runs"], result["rq_noop"]):
        run["ratio_vs_rq_noop"] = run["per_second"] / noop["per_second"]
    if "unix://" in env["REDIS_URL"]:
        from core.redisconn import stop_embedded

        stop_embedded(tmp)
    return result
