"""Worker entry point: one RQ worker on the inbound and outbound queues.

A SimpleWorker runs jobs in its own process (no fork per job), so the classifier and the
connectors are loaded once. Many of these, on many machines, share one Redis.
"""

from __future__ import annotations

import logging

from rq import SimpleWorker
from rq.serializers import JSONSerializer

from core.queue import QUEUES
from core.redisconn import get_redis


def run_worker(burst: bool = False, name: str | None = None, queues: list[str] | None = None) -> bool:
    """Run until stopped (or, with burst, until the queues are empty)."""
    from core.config import get_config

    cfg = get_config()  # fail fast on a bad configuration, before taking jobs
    unknown = set(queues or []) - set(QUEUES)
    if unknown:  # allowed (benchmarks, a deployment's own queues) but usually a typo: say so
        logging.getLogger(__name__).warning("queue(s) %s are not the hub's (%s)", ", ".join(sorted(unknown)),
                                            ", ".join(QUEUES))
    _warm(cfg)
    worker = SimpleWorker(queues or list(QUEUES), connection=get_redis(), serializer=JSONSerializer, name=name)
    return worker.work(burst=burst, with_scheduler=True, logging_level=logging.WARNING)


def _warm(cfg) -> None:  # type: ignore[no-untyped-def]
    """Load the classifier before the first job, so no citizen waits for it."""
    from core.classify import get_classifier

    get_classifier(cfg).classify("lampu jalan mati")
