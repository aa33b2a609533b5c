"""RQ job functions. Arguments are plain JSON (message ids); each job is safe to run twice."""

from __future__ import annotations

import logging

from core.config import get_config
from core.db import session_scope
from core.pipeline import process
from core.queue import enqueue_outbound
from core.replies import deliver

log = logging.getLogger(__name__)


def process_inbound(message_id: int) -> dict | None:
    """Process one stored citizen message, then queue the replies it produced."""
    cfg = get_config()
    with session_scope() as session:
        outcome = process(session, cfg, message_id)
    if outcome is None:
        return None
    for out_id in outcome.outbound:
        enqueue_outbound(out_id)
    return outcome.public()


def send_outbound(message_id: int, attempt: int = 0) -> dict:
    """Deliver one stored reply; on a retryable error, schedule the next attempt with backoff."""
    result = deliver(get_config(), message_id)
    if result.state == "retry" and result.retry_in is not None:
        enqueue_outbound(message_id, delay=result.retry_in, attempt=attempt + 1)
    return {"state": result.state, "provider_id": result.provider_id}


def sla_sweep() -> dict:
    """Warn and escalate SLA clocks (every minute); notifications go out through the outbound queue."""
    from core.sla import sweep

    with session_scope() as session:
        ids = sweep(session, get_config())
    for mid in ids:
        enqueue_outbound(mid)
    return {"notifications": len(ids)}


def reconcile() -> dict:
    """Queue what a Redis outage or a lost job left behind (stored messages, pending replies)."""
    from core.intake import reconcile as reconcile_inbound
    from core.replies import reconcile_outbound

    return {"inbound": reconcile_inbound(), **reconcile_outbound()}


def nightly_train() -> dict:
    """Retrain the router from the seed corpus and operators' labels; swapped in only if not worse."""
    from core import train

    fn = getattr(train, "nightly", None)
    return fn(get_config()) if fn else {"skipped": "no trainer"}
