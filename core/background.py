"""One piece of a worker's work left to finish in the background while the worker goes on.

A batch's dedup index write is a Redis script that runs ~10-15 ms inside Redis, and settling races
with other workers (core.dedup_race) comes after it. A worker used to wait for both before it took
its next batch; now it starts them on a thread and meanwhile reads, classifies and locates the next
batch, which needs neither. Its next index lookup waits first (core.dedup.looking_up), so every
decision still sees this worker's own previous batch, exactly as before.

At most one task is outstanding per process: starting one waits for the previous one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
_POOL: ThreadPoolExecutor | None = None
_PENDING: Future | None = None


def start(task: Callable[[], object]) -> None:
    """Run `task` on the background thread (after the previous task has finished)."""
    global _PENDING
    wait()
    _PENDING = submit(_guarded, task)


def submit(fn: Callable[..., T], *args: Any) -> "Future[T]":
    """Run fn(*args) on the background thread (after any outstanding task); the caller takes its
    result. For a Redis call whose answer the caller needs only after some database reads."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aduan-background")
    return _POOL.submit(fn, *args)


def wait() -> None:
    """Until the outstanding task, if any, has finished. Never raises: a task logs its own failure."""
    global _PENDING
    fut, _PENDING = _PENDING, None
    if fut is not None:
        fut.result()


def _guarded(task: Callable[[], object]) -> None:
    try:
        task()
    except Exception:  # noqa: BLE001 - the batch is committed; a lost index write only costs matches
        log.exception("background task failed")
