"""The job queues (RQ on Redis). Jobs are enqueued by dotted path with JSON arguments only.

Queues: ``inbound`` (a stored citizen message to process), ``outbound`` (a stored reply to
deliver) and ``maintenance`` (periodic jobs). Connectors never import this module: they hand messages to `core.intake`.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from rq import Queue, Retry
from rq.serializers import JSONSerializer

from core.redisconn import get_redis

log = logging.getLogger(__name__)

INBOUND = "inbound"
OUTBOUND = "outbound"
MAINTENANCE = "maintenance"  # SLA sweep, reconciliation, retraining
QUEUES = (OUTBOUND, INBOUND, MAINTENANCE)  # a worker serves them in this order: replies first

PROCESS_INBOUND = "workers.jobs.process_inbound"
DRAIN_INBOUND = "workers.jobs.drain_inbound"
SEND_OUTBOUND = "workers.jobs.send_outbound"
SEND_OUTBOUND_MANY = "workers.jobs.send_outbound_many"
INBOX = "aduan:inbox"  # ids of stored messages waiting for a drain job (RPUSH / LPOP)
ARMED = "aduan:inbox:armed"  # set while a drain job is queued or running
ARMED_MS = 10_000
HELPER = "aduan:inbox:helper"  # set while a drain queued for an idle worker has not started


def get_queue(name: str) -> Queue:
    return Queue(name, connection=get_redis(), serializer=JSONSerializer)


def enqueue_inbound(message_id: int, delay: float = 0) -> None:
    """Retry one message that failed inside a batch as its own job (with the remaining retries):
    enqueueing it again is harmless, the pipeline's claim makes processing happen once."""
    from core.config import get_config

    delays = get_config().queue.inbound_retry_delays  # the first delay before this job, then RQ retries
    q = get_queue(INBOUND)
    enqueue = (lambda *a, **k: q.enqueue_in(timedelta(seconds=delay), *a, **k)) if delay else q.enqueue
    enqueue(
        PROCESS_INBOUND, message_id, job_id=f"in-{message_id}",
        retry=Retry(max=len(delays) - 1, interval=delays[1:]) if len(delays) > 1 else None,
        result_ttl=600, failure_ttl=30 * 86400,
    )


def push_inbound(message_ids: list[int], force: bool = False) -> None:
    """Hand stored messages to the workers in batches: ids go on a Redis list and a drain job is
    queued unless one is already queued or running. A drain job processes up to a batch of
    messages in one transaction, so the per-job cost of RQ is paid once per batch, not per message.
    """
    if not message_ids:
        return
    r = get_redis()
    with r.pipeline() as p:
        p.rpush(INBOX, *message_ids)
        p.set(ARMED, 1, nx=True, px=ARMED_MS)
        _, armed = p.execute()
    if armed or force:  # force: the reconciler cannot trust a flag a crashed drain may have left
        enqueue_drain()


def enqueue_drain() -> None:
    get_queue(INBOUND).enqueue(DRAIN_INBOUND, result_ttl=60, failure_ttl=7 * 86400, job_timeout=600)


def invite_helper() -> None:
    """Under a backlog: queue a drain for an idle worker to join in, unless one is already waiting.
    Queuing one per full batch left dozens of drains behind a backlog that each found the inbox
    empty, and paid RQ's enqueue on every batch."""
    if get_redis().set(HELPER, 1, nx=True, px=ARMED_MS):
        enqueue_drain()


def helper_started() -> None:
    """A drain started: a later full batch may invite the next helper."""
    get_redis().delete(HELPER)


def pop_inbound(batch: int) -> list[int]:
    """Take up to `batch` waiting ids (FIFO). Ids taken by a worker that dies stay `stored` in the
    database and are queued again by the reconciler."""
    r = get_redis()
    ids = r.lpop(INBOX, batch) or []
    if ids:
        r.set(ARMED, 1, px=ARMED_MS)  # keep the drain armed while it works
    return [int(i) for i in ids]


def disarm_if_empty() -> bool:
    """Called by a drain that found the list empty. Returns True when a new drain had to be queued
    (a message arrived between the empty pop and the disarm)."""
    r = get_redis()
    r.delete(ARMED)
    if r.llen(INBOX) and r.set(ARMED, 1, nx=True, px=ARMED_MS):
        enqueue_drain()
        return True
    return False


def enqueue_outbound(message_id: int, delay: float | None = None, attempt: int = 0) -> None:
    """Queue delivery of a stored outbound message; one job id per attempt, so a retry never
    overwrites the job that scheduled it."""
    q = get_queue(OUTBOUND)
    kwargs = dict(job_id=f"out-{message_id}-{attempt}", result_ttl=600, failure_ttl=30 * 86400)
    if delay:
        q.enqueue_in(timedelta(seconds=delay), SEND_OUTBOUND, message_id, **kwargs)
    else:
        q.enqueue(SEND_OUTBOUND, message_id, **kwargs)


def enqueue_outbound_many(message_ids: list[int]) -> None:
    """Queue a drain's acknowledgements as one job: RQ's per-job cost (about a millisecond of
    bookkeeping on each side) is paid once per batch. Each reply is still delivered at most once
    (`core.replies.deliver` claims it) and retried on its own (`workers.jobs.send_outbound_many`)."""
    if message_ids:
        get_queue(OUTBOUND).enqueue(SEND_OUTBOUND_MANY, list(message_ids), result_ttl=600, failure_ttl=30 * 86400,
                                    job_timeout=600)
