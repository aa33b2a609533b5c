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
    """Load what the first job needs (settings, classifier, gazetteer, dedup tables) before taking it, so no
    citizen waits for it; then freeze those long-lived objects out of the garbage collector's
    full passes, which otherwise rescan them all (~60 ms) while a batch waits."""
    import gc

    from core import dedup
    from core.classify import get_classifier
    from core.models import Message
    from core.pipeline import locate
    from workers.jobs import effective

    effective()  # imports what reading the admins' settings needs
    text = "lampu jalan mati di Jl. Merdeka depan pasar"
    decision = get_classifier(cfg).classify(text)
    row = Message(direction="in", channel="sms", external_id="warm", text=text, location={"lat": -6.9, "lon": 107.6})
    place = locate(row)
    dedup.lookup_buckets(cfg, dedup.features_of(row, place), decision.opd or "-")
    gc.collect()
    gc.freeze()
