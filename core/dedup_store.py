"""Where deduplication keeps its candidate buckets: Redis (shared by every worker on every machine)
or this process's memory (`aduan ingest --inline`, `aduan eval dedup`), with identical results.

Every bucket keeps only its newest BUCKET_CAP entries and a lookup judges only the CANDIDATES ids
that share the most buckets with the report (a shared place counts more than a shared LSH band),
so the work per lookup is bounded however large the history grows. Redis calls are pipelined:
one round trip to write a report, two to look one up.
"""

from __future__ import annotations

import orjson  # index documents are parsed by the thousand per batch: ~5x the stdlib's speed
from collections import Counter
from typing import Any, Protocol

BUCKET_CAP = 64  # newest entries kept per bucket
CANDIDATES = 30  # candidates judged per lookup
ADDS_KEPT = 10_000  # recent index writes remembered for settling races between workers (core.dedup_race)


class Backend(Protocol):
    def add(self, doc_id: int, doc: dict[str, Any], buckets: list[str]) -> None: ...
    def add_many(self, docs: list[tuple[int, dict[str, Any], list[str]]]) -> int: ...
    def seq(self) -> int: ...
    def candidates(self, buckets: list[str], limit: int = ...) -> dict[int, dict[str, Any]]: ...


def _weight(bucket: str) -> int:
    """A shared place (with the same problem) says more than one shared LSH band."""
    return 1 if bucket.split(":", 1)[1].startswith("b") else 100  # one shared place outranks every band


def _hits(buckets: list[str], lists: list[Any]) -> "Counter[int]":
    hits: Counter[int] = Counter()
    for name, lst in zip(buckets, lists):
        w = _weight(name)
        for x in lst:
            hits[int(x)] += w
    return hits


# Lua keeps the per-bucket work inside Redis. A batch travels as one JSON argument decoded by Redis's
# C cjson: as separate arguments its ~16,000 ids and bucket names were packed one by one in Python.
# (Keys are not declared: like every multi-bucket lookup here they span hash slots, so the index
# needs a non-cluster Redis, as it always did.)
# ARGV: cap, ttl, prefix, then one flat JSON array (one Lua table, not one per bucket): the number
# of documents, their ids, then per bucket its name, its number of ids and those ids (in the batch's
# order, so the list ends as if they had been pushed one report at a time). Ids come as strings.
_PUSH_ALL = """
local cap, ttl, prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local a = cjson.decode(ARGV[4])
local nd = a[1]
local seq = redis.call('INCR', prefix .. 'seq')
local i = nd + 2
while i <= #a do
  local key, c = prefix .. a[i], a[i + 1]
  if redis.call('LPUSH', key, unpack(a, i + 2, i + 1 + c)) > cap then redis.call('LTRIM', key, 0, cap - 1) end
  redis.call('EXPIRE', key, ttl)
  i = i + 2 + c
end
redis.call('ZADD', prefix .. 'adds', seq, seq .. ':' .. table.concat(a, ',', 2, nd + 1))
redis.call('ZREMRANGEBYRANK', prefix .. 'adds', 0, -(ADDS_KEPT + 1))
return seq
""".replace("ADDS_KEPT", str(ADDS_KEPT))
# ARGV: limit, cap, prefix, then one flat JSON array: per query its number of buckets, then each
# bucket's name and weight. The ranking is _top's: most weight first, newest (highest id) first
# among equals.
_TOP_ALL = """
local limit, cap, prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local a = cjson.decode(ARGV[4])
local out, i = {}, 1
while i <= #a do
  local hits, ids, stop = {}, {}, i + 2 * a[i]
  i = i + 1
  while i <= stop do
    local w = a[i + 1]
    for _, id in ipairs(redis.call('LRANGE', prefix .. a[i], 0, cap - 1)) do
      local h = hits[id]
      if h == nil then ids[#ids + 1] = id; hits[id] = w else hits[id] = h + w end
    end
    i = i + 2
  end
  -- one number per id, weight then id, so the sort compares numbers natively (no Lua comparator)
  local keys = {}
  for k, id in ipairs(ids) do keys[k] = -(hits[id] * SPAN + tonumber(id)) end
  table.sort(keys)
  local top = {}
  for k = 1, math.min(limit, #keys) do top[k] = (-keys[k]) % SPAN end
  out[#out + 1] = top
end
return out
""".replace("SPAN", str(2 ** 36))  # ids below 2^36, weights below 2^16: exact in a double


def _top(hits: "Counter[int]", limit: int) -> list[int]:
    """The ids sharing the most buckets with the query (newest first among equals): bounded work."""
    return [i for i, _ in sorted(hits.items(), key=lambda kv: (-kv[1], -kv[0]))[:limit]]


class MemoryBackend:
    """Buckets in this process (for --inline and eval); one per database."""

    def __init__(self) -> None:
        self.buckets: dict[str, list[int] | int] = {}
        self.docs: dict[int, bytes] = {}
        self.warmed = False

    def add(self, doc_id: int, doc: dict[str, Any], buckets: list[str]) -> None:
        self.docs[doc_id] = orjson.dumps(doc)
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

    def add_many(self, docs: list[tuple[int, dict[str, Any], list[str]]]) -> int:
        for doc_id, doc, buckets in docs:
            self.add(doc_id, doc, buckets)
        return 0

    def seq(self) -> int:
        return 0  # one process: no other worker's writes to race with

    def candidates(self, buckets: list[str], limit: int = CANDIDATES) -> dict[int, dict[str, Any]]:
        return self.candidates_many([buckets], limit)[0]

    def candidates_many(self, queries: list[list[str]], limit: int = CANDIDATES) -> list[dict[int, dict[str, Any]]]:
        out = []
        for buckets in queries:
            lists = []
            for name in buckets:
                cur = self.buckets.get(name)
                lists.append(() if cur is None else (cur,) if isinstance(cur, int) else cur[-BUCKET_CAP:])
            ids = _top(_hits(buckets, lists), limit)
            out.append({i: orjson.loads(self.docs[i]) for i in ids if i in self.docs})
        return out


class RedisBackend:
    """Buckets as capped Redis lists, one key per document; everything expires after the longest case
    window, so Redis holds only what a lookup can still match. One pipelined round trip to write,
    two (bucket lists, then the best documents) to look up."""

    PREFIX = "aduan:dedup:"

    def __init__(self, client: Any, ttl_seconds: int) -> None:
        self.r, self.ttl = client, ttl_seconds

    def add(self, doc_id: int, doc: dict[str, Any], buckets: list[str]) -> None:
        self.add_many([(doc_id, doc, buckets)])

    def add_many(self, docs: list[tuple[int, dict[str, Any], list[str]]]) -> int:
        """Many reports in one round trip: the documents, then one script call that pushes every id
        onto its buckets (push, trim, expire inside Redis). Returns the write's sequence number:
        every write numbered up to `seq()` is fully visible to a lookup made after reading it."""
        if not docs:
            return 0
        p = self.r.pipeline(transaction=False)
        per_key: dict[str, list[str]] = {}  # a bucket many of the batch's reports share: one push, one expire
        for doc_id, doc, buckets in docs:
            p.set(f"{self.PREFIX}doc:{doc_id}", orjson.dumps(doc), ex=self.ttl)
            sid = str(doc_id)  # as a string: Lua would format a number for every push
            for n in buckets:
                per_key.setdefault(n, []).append(sid)
        flat: list[Any] = [len(docs), *(str(d[0]) for d in docs)]
        for n, ids in per_key.items():
            flat += [n, len(ids), *ids]
        batch = orjson.dumps(flat)
        p.eval(_PUSH_ALL, 0, BUCKET_CAP, self.ttl, self.PREFIX, batch)
        return int(p.execute()[-1])

    def seq(self) -> int:
        """The number of the latest index write."""
        return int(self.r.get(self.PREFIX + "seq") or 0)

    def written_between(self, after: int, before: int) -> dict[int, dict[str, Any]]:
        """The documents of index writes numbered strictly between `after` and `before` (other
        workers' commits that a lookup made at `after` could not see)."""
        if before - after < 2:
            return {}
        ids = sorted({int(i) for entry in self.r.zrangebyscore(self.PREFIX + "adds", f"({after}", f"({before}")
                      for i in entry.decode().split(":", 1)[1].split(",") if i})
        raw = self.r.mget([f"{self.PREFIX}doc:{i}" for i in ids]) if ids else []
        return {i: orjson.loads(v) for i, v in zip(ids, raw) if v is not None}

    def candidates(self, buckets: list[str], limit: int = CANDIDATES) -> dict[int, dict[str, Any]]:
        return self.candidates_many([buckets], limit)[0]

    def candidates_many(self, queries: list[list[str]], limit: int = CANDIDATES) -> list[dict[int, dict[str, Any]]]:
        """Every query's best candidates from one script call (Redis reads the buckets and ranks the ids,
        so only the top ids cross the wire), then every wanted document in one MGET."""
        if not any(queries):
            return [{} for _ in queries]
        flat: list[Any] = []
        for q in queries:
            flat.append(len(q))
            for n in q:
                flat += (n, _weight(n))
        batch = orjson.dumps(flat)
        tops = [[int(i) for i in t] for t in self.r.eval(_TOP_ALL, 0, limit, BUCKET_CAP, self.PREFIX, batch)]
        wanted = sorted({i for t in tops for i in t})
        raw = self.r.mget([f"{self.PREFIX}doc:{i}" for i in wanted]) if wanted else []
        docs = {i: orjson.loads(v) for i, v in zip(wanted, raw) if v is not None}
        return [{i: docs[i] for i in t if i in docs} for t in tops]
