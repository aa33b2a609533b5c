"""`aduan scheduler`: enqueues the periodic jobs (SLA sweep and reconciliation every minute,
retraining nightly). Job ids are derived from the time slot, so two schedulers (or a restart)
enqueue each slot once; every periodic job is idempotent anyway.

(RQ's CronScheduler enqueues with the pickle serializer; the hub's queues carry JSON only.)
"""

from __future__ import annotations

import logging
import signal
import time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from core.config import AppConfig
from core.queue import get_queue

log = logging.getLogger(__name__)

EVERY_MINUTE = ("workers.jobs.sla_sweep", "workers.jobs.reconcile")
NIGHTLY = ("workers.jobs.nightly_train", 2)  # 02:00 local time


def tick(cfg: AppConfig, now: datetime | None = None) -> list[str]:
    """Enqueue what is due in this minute; returns the job ids (existing ids are not enqueued twice)."""
    now = now or datetime.now(timezone.utc)
    slot = now.strftime("%Y%m%d%H%M")
    redis = get_queue("maintenance").connection
    due = [(f, f"{f.rsplit('.', 1)[1]}-{slot}") for f in EVERY_MINUTE]
    local = now.astimezone(ZoneInfo(cfg.hub.timezone))
    if local.hour == NIGHTLY[1] and local.minute == 0:
        due.append((NIGHTLY[0], f"train-{local:%Y%m%d}"))
        due.append(("workers.jobs.privacy_anonymise", f"privacy-{local:%Y%m%d}"))  # UU PDP retention
    enqueued = []
    for func, job_id in due:
        if redis.set(f"aduan:sched:{job_id}", 1, nx=True, ex=86400):
            get_queue("maintenance").enqueue(func, job_id=job_id, result_ttl=3600, failure_ttl=7 * 86400,
                                             job_timeout=3600)
            enqueued.append(job_id)
    return enqueued


def run_scheduler(cfg: AppConfig) -> None:
    stop = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop:
        try:
            tick(cfg)
        except Exception:  # noqa: BLE001 - Redis blips must not kill the scheduler
            log.exception("scheduler tick failed; retrying next minute")
        next_minute = 60 - time.time() % 60
        deadline = time.monotonic() + next_minute
        while not stop and time.monotonic() < deadline:
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
