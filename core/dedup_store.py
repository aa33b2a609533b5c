"""Where deduplication keeps its candidate buckets: Redis (shared by every worker on every machine)
or this process's memory (`aduan ingest --inline`, `aduan eval dedup`), with identical results.

Every bucket keeps only its newest BUCKET_CAP entries and a lookup judges only the CANDIDATES ids
that share the most buckets with the report (a shared place counts more than a shared LSH band),
so the work per lookup is bounded however large the history grows. Redis calls are pipelined:
one round trip to write a report, two to look one up.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Protocol

BUCKET_CAP = 64  # newest entries kept per bucket
CANDIDATES = 30  # candidates judged per lookup


class Backend(Protocol):
    def add(self, doc_id: int, doc: dict[str, Any], buckets: list[str]) -> None: ...
    def candidates(self, buckets: list[str], limit: int = ...) -> dict[int, dict[str, Any]]: ...


def _weight(bucket: str) -> int:
    """A shared place (with the same problem) says more than one shared LSH band."""
    return 1 if bucket.split(":", 1)[1].startswith("b") else 100  # one shared place outranks every band


def _top(hits: "Counter[int]", limit: int) -> list[int]:
    """The ids sharing the most buckets with the query (newest first among equals): bounded work."""
    return [i for i, _ in sorted(hits.items(), key=lambda kv: (-kv[1], -kv[0]))[:limit]]


class MemoryBackend:
    """Buckets in this process (for --inline and eval); one per database."""

    def __init__(self) -> None:
        self.buckets: dict[str, list[int] | int] = {}
        self.docs: dict[int, str] = {}
        self.warmed = False

    def add(self, doc_id: int, doc: dict[str, Any], buckets: list[str]) -> None:
        self.docs[doc_id] = json.dumps(doc, separators=(",", ":"))
        for name in buckets:
            cur = self.buckets.get(name)
            if cur is None:
                self.buckets[name] = doc_id
            elif isinstance(cur, int):
                self.buckets[name] = [cur, doc_id]
            else:
                cur.append(doc_id)
                if len(cur) > 2 * BUCKET_CAP:
                    del cur[:-BUCKET_CAP]

    def candidates(self, buckets: list[str], limit: int = CANDIDATES) -> dict[int, dict[str, Any]]:
        hits: Counter[int] = Counter()
        for name in buckets:
            cur = self.buckets.get(name)
            if cur is None:
                continue
            w = _weight(name)
            for i in ((cur,) if isinstance(cur, int) else cur[-BUCKET_CAP:]):
                hits[i] += w
        return {i: json.loads(self.docs[i]) for i in _top(hits, limit) if i in self.docs}


class RedisBackend:
    """Buckets as capped Redis lists, one key per document; everything expires after the longest case
    window, so Redis holds only what a lookup can still match. One pipelined round trip to write,
    two (bucket lists, then the best documents) to look up."""

    PREFIX = "aduan:dedup:"

    def __init__(self, client: Any, ttl_seconds: int) -> None:
        self.r, self.ttl = client, ttl_seconds

    def add(self, doc_id: int, doc: dict[str, Any], buckets: list[str]) -> None:
        p = self.r.pipeline(transaction=False)
        p.set(f"{self.PREFIX}doc:{doc_id}", json.dumps(doc, separators=(",", ":")), ex=self.ttl)
        for name in buckets:
            key = self.PREFIX + name
            p.lpush(key, doc_id)
            p.ltrim(key, 0, BUCKET_CAP - 1)
            p.expire(key, self.ttl)
        p.execute()

    def candidates(self, buckets: list[str], limit: int = CANDIDATES) -> dict[int, dict[str, Any]]:
        if not buckets:
            return {}
        p = self.r.pipeline(transaction=False)
        for name in buckets:
            p.lrange(self.PREFIX + name, 0, BUCKET_CAP - 1)
        hits: Counter[int] = Counter()
        for name, lst in zip(buckets, p.execute()):
            w = _weight(name)
            for x in lst:
                hits[int(x)] += w
        ids = _top(hits, limit)
        if not ids:
            return {}
        raw = self.r.mget([f"{self.PREFIX}doc:{i}" for i in ids])
        return {i: json.loads(v) for i, v in zip(ids, raw) if v is not None}
