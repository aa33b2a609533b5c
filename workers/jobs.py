"""RQ job functions. Arguments are plain JSON (message ids); each job is safe to run twice."""

from __future__ import annotations

import logging

from core.config import AppConfig, get_config
from core.db import session_scope
from core.dedup_race import settle
from core.logs import bind, unbind
from core.pipeline import process
from core.queue import enqueue_outbound, enqueue_outbound_many
from core.replies import deliver

log = logging.getLogger(__name__)


def effective() -> AppConfig:
    """config.yaml plus what admins changed in the console (stored in the database, wins over the file)."""
    from core.console.overrides import effective_config

    base = get_config()
    try:
        with session_scope() as session:
            return effective_config(session, base)
    except Exception:  # noqa: BLE001 - no settings table yet, or the database is down: the file applies
        return base


def process_inbound(message_id: int) -> dict | None:
    """Process one stored citizen message, then queue the replies it produced."""
    cfg = effective()
    token = bind(message_id=message_id)
    try:
        with session_scope() as session:
            outcome = process(session, cfg, message_id)
        settle(session, cfg)
    except Exception as exc:
        _record_failure(message_id, exc, cfg.queue.inbound_retry_delays)
        log.exception("processing failed")
        raise  # RQ retries with the configured delays, then parks the job in its failed registry
    finally:
        unbind(token)
    if outcome is None:
        return None
    log.info("message processed: %s", outcome.kind,
             extra={"message_id": message_id, "ticket": outcome.ticket, "channel": outcome.channel})
    for out_id in outcome.outbound:
        enqueue_outbound(out_id)
    from core.media import enqueue_fetch

    enqueue_fetch(message_id)  # photo evidence kept with the ticket; a no-op without photos
    return outcome.public()


BATCH = 100  # messages per transaction: large enough to amortise, short enough not to block webhooks


def drain_inbound() -> dict:
    """Process waiting messages in batches until the inbox is empty (see core.queue.push_inbound).

    Under a backlog, a drain that takes a full batch invites another drain first (unless one is
    already waiting), so every idle worker joins in. A message that fails inside a batch is rolled
    back alone (savepoint) and retried as its own job; the rest of the batch commits.
    """
    from core.batch import process_batch
    from core.media import enqueue_fetch_many
    from core.queue import disarm_if_empty, enqueue_inbound, helper_started, invite_helper, pop_inbound

    cfg = effective()
    done = 0
    helper_started()
    while True:
        ids = pop_inbound(BATCH)
        if not ids:
            disarm_if_empty()
            return {"processed": done}
        if len(ids) == BATCH:
            invite_helper()
        with session_scope() as session:
            outcomes, failures = process_batch(session, cfg, ids)
        settle(session, cfg)  # a ticket opened at the same moment as another worker's case joins it
        delays = cfg.queue.inbound_retry_delays
        for mid, exc in failures.items():
            _record_failure(mid, exc, delays)
            if delays:
                enqueue_inbound(mid, delay=delays[0])
        enqueue_outbound_many([o for oc in outcomes for o in oc.outbound])
        enqueue_fetch_many([oc.message_id for oc in outcomes])
        done += len(outcomes)


def _record_failure(message_id: int, exc: Exception, delays: list[int]) -> None:
    """Count the failed attempt on the message; after the last retry it is parked as 'failed'."""
    from core.models import Event, Message, utcnow

    try:
        with session_scope() as session:
            msg = session.get(Message, message_id)
            if msg is None or msg.state != "stored":
                return
            msg.attempts += 1
            msg.error = f"{type(exc).__name__}: {exc}"[:500]
            if msg.attempts > len(delays):
                msg.state = "failed"
                session.add(Event(at=utcnow(), actor="worker", action="message.failed", message_id=message_id,
                                  data={"error": msg.error, "attempts": msg.attempts}))
    except Exception:  # noqa: BLE001 - the database itself may be the failure
        log.exception("could not record the failure of message %s", message_id)


def replay_failed(message_ids: list[int] | None = None) -> int:
    """Put parked messages back in the queue after a fix (all failed ones, or the given ids)."""
    from sqlmodel import select

    from core.models import Event, Message, utcnow
    from core.queue import push_inbound

    with session_scope() as session:
        q = select(Message).where(Message.direction == "in", Message.state == "failed")
        if message_ids:
            q = q.where(Message.id.in_(message_ids))
        rows = session.exec(q).all()
        for m in rows:
            m.state, m.attempts = "stored", 0
            session.add(Event(at=utcnow(), actor="admin", action="message.replay", message_id=m.id))
        ids = [m.id for m in rows]
    push_inbound(ids, force=True)
    return len(ids)


def send_outbound(message_id: int, attempt: int = 0) -> dict:
    """Deliver one stored reply; on a retryable error, schedule the next attempt with backoff."""
    result = deliver(effective(), message_id)
    log.info("outbound %s", result.state, extra={"message_id": message_id})
    if result.state == "retry" and result.retry_in is not None:
        enqueue_outbound(message_id, delay=result.retry_in, attempt=attempt + 1)
    return {"state": result.state, "provider_id": result.provider_id}


def send_outbound_many(message_ids: list[int]) -> dict:
    """Deliver a batch of stored replies (a drain's acknowledgements) one after another. A reply
    that fails unexpectedly goes on as its own job, so it neither stops the others nor hides:
    it retries, and lands in RQ's failed registry if it keeps failing."""
    states: dict[str, int] = {}
    for mid in message_ids:
        try:
            state = send_outbound(mid)["state"]
        except Exception:  # noqa: BLE001 - isolate the one reply; the rest of the batch goes out
            log.exception("outbound %s failed inside a batch; queued on its own", mid)
            enqueue_outbound(mid, attempt=1)
            state = "requeued"
        states[state] = states.get(state, 0) + 1
    return states


def sla_sweep() -> dict:
    """Warn and escalate SLA clocks (every minute); notifications go out through the outbound queue."""
    from core.sla import sweep

    with session_scope() as session:
        ids = sweep(session, effective())
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


def privacy_anonymise() -> dict:
    """Nightly retention (UU 27/2022): anonymise identities whose finished tickets passed the retention period."""
    from core.privacy import anonymise_expired

    cfg = effective()
    if not cfg.privacy.nightly:
        return {"skipped": "privacy.nightly is false"}
    with session_scope() as session:
        return anonymise_expired(session, cfg, actor="scheduler").public()


def noop(_i: int = 0) -> None:
    """Does nothing: the benchmark measures plain RQ's per-job cost with it."""
