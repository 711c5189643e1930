"""Telegram's flood limits, shared by every process that sends as the bot (the worker's
broadcasts and notifications, however many workers run).

Invariant: each send first *reserves* its moment in Redis (one Lua round trip, GCRA: a "theoretical
arrival time" per key), for the bot as a whole and for the one chat; the moments of the bot's
sends are at least ``1/rate`` apart and those of one chat at least ``chat_interval_s`` apart, in
whatever process they were reserved. A 429's ``retry_after`` pushes the bot's whole schedule back
(:meth:`Limiter.pause`), so every sender waits it out, not only the one that was refused.

Why not a library: python-telegram-bot's ``AIORateLimiter`` (aiolimiter) counts in one process
only, and has no limit per private chat; two workers would each send 30 a second.
"""

from __future__ import annotations

import asyncio
import time

from core.redis import Client
from core.redis_pipeline import Lua

PREFIX = "airgate:tg:rate:"

# KEYS: the bot's key, the chat's key. ARGV: now (ms), the bot's interval (ms), the chat's (ms).
# Returns how long (ms) to wait before sending: the reserved moment minus now.
_RESERVE = Lua("""
local now = tonumber(ARGV[1])
local bot_tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local chat_tat = tonumber(redis.call('GET', KEYS[2]) or '0')
local at = math.max(now, bot_tat, chat_tat)
local bot_next = at + tonumber(ARGV[2])
local chat_next = at + tonumber(ARGV[3])
redis.call('SET', KEYS[1], bot_next, 'PX', bot_next - now + 1000)
redis.call('SET', KEYS[2], chat_next, 'PX', chat_next - now + 1000)
return at - now
""")

# KEYS: the bot's key. ARGV: now (ms), the pause (ms). Nothing is reserved before now + pause.
_PAUSE = Lua("""
local until_ms = tonumber(ARGV[1]) + tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ms > tat then
  redis.call('SET', KEYS[1], until_ms, 'PX', tonumber(ARGV[2]) + 1000)
end
return 0
""")


def _now_ms() -> int:
    return int(time.time() * 1000)


class Limiter:
    """``await limiter.wait(chat_id)`` before each send; ``rate`` sends a second for the bot."""

    def __init__(self, redis: Client, *, bot: str, rate: float, chat_interval_s: float) -> None:
        # The bot's id as the keys' hash tag: one script reserves the bot's and a chat's moment.
        self._bot_key = f"{PREFIX}{{{bot}}}"
        self._chat_prefix = f"{PREFIX}{{{bot}}}:"
        self._interval_ms = max(1, round(1000 / rate))
        self._chat_interval_ms = round(chat_interval_s * 1000)
        self._redis = redis

    def keys(self, chat_id: int | str) -> list[str]:
        """The bot's key and the chat's: one hash tag (the bot's id), one slot on a cluster."""
        return [self._bot_key, f"{self._chat_prefix}{chat_id}"]

    async def reserve(self, chat_id: int | str) -> float:
        """Reserve the next moment this chat may be sent to; seconds until it."""
        keys = self.keys(chat_id)
        args = [_now_ms(), self._interval_ms, self._chat_interval_ms]
        return max(0, int(await _RESERVE(self._redis, keys, args))) / 1000

    async def wait(self, chat_id: int | str) -> None:
        delay = await self.reserve(chat_id)
        if delay > 0:
            await asyncio.sleep(delay)

    async def pause(self, seconds: float) -> None:
        """Telegram said 429 ``retry_after``: nobody sends as the bot before it has passed."""
        await _PAUSE(self._redis, [self._bot_key], [_now_ms(), round(seconds * 1000)])
