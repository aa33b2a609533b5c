"""Prometheus metrics at /metrics, computed at scrape time from the database and Redis.

Web, workers and pollers are separate processes on possibly many machines; counting in each
would need a multiprocess registry. The database and the queues already hold the truth, so
the collector reads them (cached for a few seconds, so a tight scrape interval costs little).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import text

from core.config import AppConfig

LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)


class HubCollector:
    def __init__(self, cfg: AppConfig, ttl: float = 5.0):
        self.cfg, self.ttl = cfg, ttl
        self._cache: tuple[float, list[Any]] = (0.0, [])

    def collect(self):  # type: ignore[no-untyped-def]
        at, families = self._cache
        if time.monotonic() - at > self.ttl:
            families = list(self._families())
            self._cache = (time.monotonic(), families)
        yield from families

    def _families(self):  # type: ignore[no-untyped-def]
        from core.db import get_engine

        with get_engine().connect() as c:
            inbound = CounterMetricFamily("aduan_messages_in", "Citizen messages stored, per channel", labels=["channel"])
            for channel, n in c.execute(text("SELECT channel, count(*) FROM message WHERE direction='in' GROUP BY channel")):
                inbound.add_metric([channel], n)
            yield inbound
            states = GaugeMetricFamily("aduan_inbound_state", "Inbound messages by processing state", labels=["state"])
            for state, n in c.execute(text("SELECT state, count(*) FROM message WHERE direction='in' GROUP BY state")):
                states.add_metric([state], n)
            yield states
            out = CounterMetricFamily("aduan_outbound", "Outbound messages by delivery state", labels=["state"])
            for state, n in c.execute(text("SELECT delivery_state, count(*) FROM message WHERE direction='out' GROUP BY delivery_state")):
                out.add_metric([state or "none"], n)
            yield out
            total, triage = c.execute(text("SELECT count(*), coalesce(sum(CASE WHEN triage THEN 1 ELSE 0 END), 0) FROM ticket")).one()
            yield GaugeMetricFamily("aduan_classifier_triage_ratio", "Share of tickets sent to triage",
                                    value=(triage / total) if total else 0.0)
            rows = c.execute(text("SELECT created_at, processed_at FROM message WHERE direction='in' "
                                  "AND processed_at IS NOT NULL ORDER BY id DESC LIMIT 2000")).all()
            yield _histogram(rows)
            breaches = c.execute(text("SELECT count(*) FROM message WHERE direction='out' AND template='sla_breach'")).scalar_one()
            yield CounterMetricFamily("aduan_sla_breaches", "SLA breach notifications raised", value=breaches)
        depth = GaugeMetricFamily("aduan_queue_depth", "Jobs waiting per queue", labels=["queue"])
        try:
            from core.queue import QUEUES, get_queue

            for name in QUEUES:
                depth.add_metric([name], get_queue(name).count)
        except Exception:  # noqa: BLE001 - Redis down: the metric is simply absent
            pass
        yield depth


def _histogram(rows: list[Any]) -> HistogramMetricFamily:
    from datetime import datetime

    def sec(a: Any, b: Any) -> float:
        a = a if isinstance(a, datetime) else datetime.fromisoformat(str(a))
        b = b if isinstance(b, datetime) else datetime.fromisoformat(str(b))
        return max(0.0, (b - a).total_seconds())

    values = [sec(a, b) for a, b in rows if a and b]
    buckets, acc = [], 0
    for edge in LATENCY_BUCKETS:
        acc = sum(1 for v in values if v <= edge)
        buckets.append((str(edge), acc))
    buckets.append(("+Inf", len(values)))
    return HistogramMetricFamily("aduan_processing_latency_seconds",
                                 "Stored -> processed, over the latest 2,000 messages",
                                 buckets=buckets, sum_value=sum(values))


def mount(app: FastAPI, cfg: AppConfig) -> None:
    registry = CollectorRegistry()
    registry.register(HubCollector(cfg))

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
