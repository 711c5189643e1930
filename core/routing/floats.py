"""The aggregator accounts' float as last polled, kept in Redis for every process to read.

Invariant: a low float is owed one alert per crossing, whichever worker polls: :func:`record`
compares the new balance with the threshold and with the last reading in one Lua step, so of any
number of concurrent polls exactly one sees the account go from not low (or never read) to low;
a reading at or above the threshold re-arms it (as the retailers' low-stock alert does,
docs/ALERTS.md). A failed poll keeps the last balance and records the error.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.redis import Client
from core.redis_pipeline import Lua

PREFIX = "airgate:float:"

# KEYS: the account's hash. ARGV: balance minor, currency, threshold minor (0: none).
# Returns 1 when this reading crossed below the threshold.
_RECORD = Lua("""
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local balance, limit = tonumber(ARGV[1]), tonumber(ARGV[3])
local was = redis.call('HGET', KEYS[1], 'low')
local low = (limit > 0 and balance < limit) and '1' or '0'
redis.call('HSET', KEYS[1], 'balance_minor', ARGV[1], 'currency', ARGV[2], 'at_ms', now,
  'low', low, 'error', '')
if low == '1' and was ~= '1' then return 1 end
return 0
""")


@dataclass(frozen=True, slots=True)
class Float:
    """An account's last reading (``balance_minor`` None: never read)."""

    account: str
    balance_minor: int | None
    currency: str
    at_ms: int | None
    low: bool
    error: str  # the last poll's failure, "" when it worked

    def as_dict(self) -> dict[str, object]:
        return {
            "balance_minor": self.balance_minor,
            "currency": self.currency,
            "at_ms": self.at_ms,
            "low": self.low,
            "error": self.error,
        }


async def record(
    redis: Client, *, account: str, balance_minor: int, currency: str, low_minor: int
) -> bool:
    """Keep a reading; True when it crossed below ``low_minor`` (an alert is owed)."""
    crossed = await _RECORD(redis, [PREFIX + account], [balance_minor, currency, low_minor])
    return bool(crossed)


async def record_error(redis: Client, *, account: str, error: str) -> None:
    await redis.hset(PREFIX + account, mapping={"error": error[:160]})  # type: ignore[misc]


async def read(redis: Client, account: str) -> Float:
    raw = {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in (await redis.hgetall(PREFIX + account)).items()  # type: ignore[misc]
    }
    balance = raw.get("balance_minor")
    at = raw.get("at_ms")
    return Float(
        account=account,
        balance_minor=int(balance) if balance else None,
        currency=raw.get("currency", ""),
        at_ms=int(at) if at else None,
        low=raw.get("low") == "1",
        error=raw.get("error", ""),
    )
