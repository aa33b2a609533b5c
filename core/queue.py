"""The job queues (RQ on Redis). Jobs are enqueued by dotted path with JSON arguments only.

Queues: ``inbound`` (a stored citizen message to process), ``outbound`` (a stored reply to
deliver) and ``maintenance`` (periodic jobs). Connectors never import this module: they hand messages to `core.intake`.
"""

from __future__ import annotations

import logging

from rq import Queue, Retry
from rq.serializers import JSONSerializer

from core.redisconn import get_redis

log = logging.getLogger(__name__)

INBOUND = "inbound"
OUTBOUND = "outbound"
MAINTENANCE = "maintenance"  # SLA sweep, reconciliation, retraining
QUEUES = (INBOUND, OUTBOUND, MAINTENANCE)

PROCESS_INBOUND = "workers.jobs.process_inbound"
SEND_OUTBOUND = "workers.jobs.send_outbound"


def get_queue(name: str) -> Queue:
    return Queue(name, connection=get_redis(), serializer=JSONSerializer)


def enqueue_inbound(message_id: int) -> None:
    """Queue a stored inbound message (one job id per message: enqueueing it again is harmless,
    the pipeline's claim makes processing happen once)."""
    from core.config import get_config

    delays = get_config().queue.inbound_retry_delays
    get_queue(INBOUND).enqueue(
        PROCESS_INBOUND, message_id, job_id=f"in-{message_id}",
        retry=Retry(max=len(delays), interval=delays) if delays else None,
        result_ttl=600, failure_ttl=30 * 86400,
    )


def enqueue_outbound(message_id: int, delay: float | None = None, attempt: int = 0) -> None:
    """Queue delivery of a stored outbound message; one job id per attempt, so a retry never
    overwrites the job that scheduled it."""
    q = get_queue(OUTBOUND)
    kwargs = dict(job_id=f"out-{message_id}-{attempt}", result_ttl=600, failure_ttl=30 * 86400)
    if delay:
        from datetime import timedelta

        q.enqueue_in(timedelta(seconds=delay), SEND_OUTBOUND, message_id, **kwargs)
    else:
        q.enqueue(SEND_OUTBOUND, message_id, **kwargs)
