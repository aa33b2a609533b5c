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


# Lua keeps the per-bucket work inside Redis. KEYS: the batch's buckets, each once; ARGV: cap, ttl,
# prefix, the number of documents, their ids, then per bucket its number of ids and those ids (in
# the batch's order, so the list ends as if they had been pushed one report at a time).
_PUSH_ALL = """
local cap, ttl, prefix, nd = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local seq = redis.call('INCR', prefix .. 'seq')
local ids, a = {}, 5 + nd
for d = 1, nd do ids[d] = ARGV[4 + d] end
for k = 1, #KEYS do
  local c = tonumber(ARGV[a])
  if redis.call('LPUSH', KEYS[k], unpack(ARGV, a + 1, a + c)) > cap then redis.call('LTRIM', KEYS[k], 0, cap - 1) end
  redis.call('EXPIRE', KEYS[k], ttl)
  a = a + c + 1
end
redis.call('ZADD', prefix .. 'adds', seq, seq .. ':' .. table.concat(ids, ','))
redis.call('ZREMRANGEBYRANK', prefix .. 'adds', 0, -(ADDS_KEPT + 1))
return seq
""".replace("ADDS_KEPT", str(ADDS_KEPT))
# ARGV: limit, cap, number of queries, each query's number of keys, then one weight per key.
# The ranking is _top's: most weight first, newest (highest id) first among equals.
_TOP_ALL = """
local limit, cap, nq = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local wbase, k, out = 3 + nq, 1, {}
for q = 1, nq do
  local hits, ids = {}, {}
  for j = 1, tonumber(ARGV[3 + q]) do
    local w = tonumber(ARGV[wbase + k])
    for _, id in ipairs(redis.call('LRANGE', KEYS[k], 0, cap - 1)) do
      local h = hits[id]
      if h == nil then ids[#ids + 1] = id; hits[id] = w else hits[id] = h + w end
    end
    k = k + 1
  end
  -- one number per id, weight then id, so the sort compares numbers natively (no Lua comparator)
  local keys = {}
  for i, id in ipairs(ids) do keys[i] = -(hits[id] * SPAN + tonumber(id)) end
  table.sort(keys)
  local top = {}
  for i = 1, math.min(limit, #keys) do top[i] = (-keys[i]) % SPAN end
  out[q] = top
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
        per_key: dict[str, list[int]] = {}  # a bucket many of the batch's reports share: one push, one expire
        for doc_id, doc, buckets in docs:
            p.set(f"{self.PREFIX}doc:{doc_id}", orjson.dumps(doc), ex=self.ttl)
            for n in buckets:
                per_key.setdefault(self.PREFIX + n, []).append(doc_id)
        args: list[Any] = [BUCKET_CAP, self.ttl, self.PREFIX, len(docs), *(d[0] for d in docs)]
        for ids in per_key.values():
            args += [len(ids), *ids]
        p.eval(_PUSH_ALL, len(per_key), *per_key, *args)
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
        keys = [self.PREFIX + n for q in queries for n in q]
        if not keys:
            return [{} for _ in queries]
        weights = [_weight(n) for q in queries for n in q]
        tops = [[int(i) for i in t] for t in self.r.eval(
            _TOP_ALL, len(keys), *keys, limit, BUCKET_CAP, len(queries), *[len(q) for q in queries], *weights)]
        wanted = sorted({i for t in tops for i in t})
        raw = self.r.mget([f"{self.PREFIX}doc:{i}" for i in wanted]) if wanted else []
        docs = {i: orjson.loads(v) for i, v in zip(wanted, raw) if v is not None}
        return [{i: docs[i] for i in t if i in docs} for t in tops]
