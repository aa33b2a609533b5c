"""Provider rate limits shared by every worker on every machine (in Redis).

A connector declares its limits per outgoing message, e.g. Telegram: 30 messages/s per bot
and 1 message/s per chat. `acquire` takes a slot in every window at once, atomically (Lua),
or says how long to wait. Messages over a limit wait; none are dropped.
"""

from __future__ import annotations

import time

import redis

_LUA = """
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i - 1])
  local n = tonumber(redis.call('GET', key) or '0')
  if n >= limit then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then ttl = tonumber(ARGV[2 * i]) end
    return ttl
  end
end
for i, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('PEXPIRE', key, tonumber(ARGV[2 * i])) end
end
return 0
"""

Limit = tuple[str, int, float]  # (key, how many, per seconds)


def acquire(client: redis.Redis, limits: list[Limit]) -> float:
    """Take one slot in every limit; 0.0 when allowed, else seconds to wait before trying again."""
    if not limits:
        return 0.0
    keys = [f"aduan:rl:{k}" for k, _, _ in limits]
    args: list[int] = []
    for _, n, per in limits:
        args += [n, max(1, int(per * 1000))]
    wait_ms = client.eval(_LUA, len(keys), *keys, *args)
    return float(wait_ms) / 1000.0


def wait_for_slot(client: redis.Redis, limits: list[Limit], max_block: float = 1.5) -> float:
    """Block up to `max_block` seconds for a slot; returns the remaining wait (0.0 = acquired)."""
    deadline = time.monotonic() + max_block
    while True:
        wait = acquire(client, limits)
        if wait <= 0 or time.monotonic() + wait > deadline:
            return wait
        time.sleep(wait)
