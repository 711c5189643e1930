"""Per-key rate limits held in Redis, so they hold across every ``serve`` process.

Invariant: one Lua call per request decides it (GCRA, the "theoretical arrival time" of the next
request, on Redis's own clock so that processes on machines whose clocks disagree still share one
schedule): a key may spend ``burst`` requests at once, then one every ``1/rate`` seconds. The Redis
key names the API key by its row id, never by the key.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable
from typing import Any

from redis.exceptions import NoScriptError

from core.redis_pipeline import HotClient, Lua

PREFIX = "airgate:api:rate:"

# KEYS: the key's schedule. ARGV: the interval between requests (µs), the burst.
# Returns 0 if the request may go now, else how long (µs) until it may.
_TAKE = Lua("""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local next_tat = tat + interval
local allow_at = next_tat - interval * burst
if now < allow_at then
  return allow_at - now
end
local ttl_ms = math.ceil((next_tat - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', ttl_ms)
return 0
""")


class RateLimiter:
    def __init__(self, redis: HotClient, *, rate_per_s: float, burst: int) -> None:
        self._redis = redis
        self._interval_us = max(1, round(1_000_000 / rate_per_s))
        self._burst = burst

    def ask(self, key_id: int) -> Awaitable[float]:
        """Ask now (the command is sent at once); await the answer: 0 if key ``key_id`` may
        make a request now, else the seconds to wait. Always await it."""
        keys, args = [f"{PREFIX}{key_id}"], [self._interval_us, self._burst]
        return self._answer(self._redis.evalsha(_TAKE.sha, 1, *keys, *args), keys, args)

    async def _answer(self, reply: Awaitable[Any], keys: list[str], args: list[int]) -> float:
        try:
            wait_us = int(await reply)
        except NoScriptError:  # the server lacked the script (its first use, a restart)
            wait_us = int(await _TAKE(self._redis, keys, args))
        return wait_us / 1_000_000

    async def take(self, key_id: int) -> float:
        return await self.ask(key_id)


def retry_after(wait_s: float) -> str:
    """Retry-After in whole seconds, never 0 (a client told 0 would ask again at once)."""
    return str(max(1, math.ceil(wait_s)))
