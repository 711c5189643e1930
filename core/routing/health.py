"""How each (aggregator account, operator) is doing, as AirGate sees it, and its circuit breaker.

Invariant: every worker process reads and changes the same state, in Redis, only through the two
Lua scripts below, each one atomic step: one worker's failures open the breaker for all, and of
the workers asking at once when an open breaker's time is up exactly one gets the probe.

The breaker of one (account, operator)::

    closed ──(route_failures_to_open failures in a row)──▶ open
    open ──(route_open_s passed; the next send is the probe)──▶ half_open
    half_open ──(the probe succeeds)──▶ closed
    half_open ──(the probe fails)──▶ open (for route_open_s again)
    half_open ──(no word of the probe for PROBE_LEASE: its worker died)──▶ another probe

A failure is what says the account is not working for that operator: a request not sent, an
aggregator unavailable (5xx), an unknown outcome (a time-out), or an answer slower than
``route_slow_ms``. A refusal or an aggregator's own "failed" is the aggregator working: counted,
never a failure (a bad number is refused everywhere; docs/DECISIONS.md). Redis away: every
account is admitted (the breaker fails open) and nothing is recorded; delivery goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from core.logging import get_logger
from core.redis import Client
from core.redis_pipeline import Lua

if TYPE_CHECKING:
    from core.settings import Settings

log = get_logger(__name__)

# One hash tag for every key of the breakers: a script admits among several accounts' keys and
# records into the index (a few keys, one write per send: one slot carries them easily).
PREFIX = "airgate:{route}:"
INDEX = "airgate:{route}:index"  # every "account|operator" ever recorded: what status lists
DETAIL_CHARS = 160  # the last error's text kept (an adapter's detail never holds a secret)


class Breaker(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Result(StrEnum):
    """What one send told about an (account, operator)."""

    OK = "ok"
    SLOW = "slow"  # an answer, slower than route_slow_ms: a failure for the breaker
    REFUSED = "refused"  # a definite no (ProviderRejected, or the aggregator's own "failed")
    ERROR = "error"  # not sent or unavailable
    UNKNOWN = "unknown"  # may have been applied (a time-out): the top-up stays there

    @property
    def failure(self) -> bool:
        return self in (Result.SLOW, Result.ERROR, Result.UNKNOWN)


# KEYS: the candidates' hashes in order. ARGV: open_ms, probe lease ms.
# Returns the 1-based index of the first admitted, 0 if none.
_ADMIT = Lua("""
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local open_ms, lease_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  local state, opened, probe = unpack(redis.call('HMGET', key, 'state', 'opened_ms', 'probe_ms'))
  if not state or state == 'closed' then return i end
  if (state == 'open' and now >= tonumber(opened) + open_ms)
      or (state == 'half_open' and now >= tonumber(probe or 0)) then
    redis.call('HSET', key, 'state', 'half_open', 'probe_ms', now + lease_ms, 'changed_ms', now)
    return i
  end
end
return 0
""")

# KEYS: the hash, the index. ARGV: result, is failure (0/1), latency ms, failures to open,
# detail, index member. Returns the state after, and 1 if this result changed it.
_RECORD = Lua("""
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local key, result, failure = KEYS[1], ARGV[1], ARGV[2] == '1'
redis.call('SADD', KEYS[2], ARGV[6])
redis.call('HINCRBY', key, result, 1)
local lat = tonumber(redis.call('HGET', key, 'latency_ms') or ARGV[3])
redis.call('HSET', key, 'latency_ms', string.format('%.1f', lat * 0.8 + tonumber(ARGV[3]) * 0.2),
  'last_ms', now)
local state = redis.call('HGET', key, 'state') or 'closed'
if not failure then
  redis.call('HSET', key, 'fails', 0)
  if state ~= 'closed' then
    redis.call('HSET', key, 'state', 'closed', 'changed_ms', now)
    return {'closed', 1}
  end
  return {state, 0}
end
local fails = redis.call('HINCRBY', key, 'fails', 1)
redis.call('HSET', key, 'last_error', ARGV[5], 'last_error_ms', now)
if state == 'half_open' or (state == 'closed' and fails >= tonumber(ARGV[4])) then
  redis.call('HSET', key, 'state', 'open', 'opened_ms', now, 'changed_ms', now)
  return {'open', 1}
end
return {state, 0}
""")


def key(account: str, operator: str) -> str:
    return f"{PREFIX}{account}|{operator}"


@dataclass(frozen=True, slots=True)
class Health:
    """The breaker's settings and where its state lives."""

    redis: Client
    failures_to_open: int
    open_ms: int
    probe_lease_ms: int  # a probe not heard of after this long is given up: the next may probe

    @classmethod
    def from_settings(cls, settings: Settings, redis: Client) -> Health:
        # A probe is one send: bounded by the provider's time-outs, plus slack for a busy loop.
        lease_s = settings.provider_timeout_s + settings.provider_connect_timeout_s + 5
        return cls(
            redis=redis,
            failures_to_open=settings.route_failures_to_open,
            open_ms=round(settings.route_open_s * 1000),
            probe_lease_ms=round(lease_s * 1000),
        )

    async def admit(self, operator: str, accounts: list[str]) -> str | None:
        """The first of ``accounts`` whose breaker for ``operator`` lets a send through (an open
        one whose time is up becomes half-open: this send is its probe); None if none does."""
        if not accounts:
            return None
        keys = [key(name, operator) for name in accounts]
        try:
            index = int(await _ADMIT(self.redis, keys, [self.open_ms, self.probe_lease_ms]))
        except (RedisError, OSError) as exc:
            log.warning("routing.health_unavailable", error=type(exc).__name__)
            return accounts[0]
        return accounts[index - 1] if index else None

    async def record(
        self, *, account: str, operator: str, result: Result, latency_ms: float, detail: str = ""
    ) -> Breaker | None:
        """Count one send's result; the breaker's state after (None: Redis did not answer)."""
        args: list[Any] = [
            result.value,
            int(result.failure),
            round(latency_ms, 1),
            self.failures_to_open,
            detail[:DETAIL_CHARS],
            f"{account}|{operator}",
        ]
        try:
            state, changed = await _RECORD(self.redis, [key(account, operator), INDEX], args)
        except (RedisError, OSError) as exc:
            log.warning("routing.health_unavailable", error=type(exc).__name__)
            return None
        after = Breaker(_text(state))
        if changed:
            log.warning(f"routing.breaker_{after}", account=account, operator=operator, why=detail)
        return after


async def read_all(redis: Client) -> dict[tuple[str, str], dict[str, str]]:
    """Every recorded (account, operator)'s hash, decoded: what status and /metrics show."""
    members = sorted(_text(m) for m in await redis.smembers(INDEX))  # type: ignore[misc]
    out: dict[tuple[str, str], dict[str, str]] = {}
    for member in members:
        account, _, operator = member.partition("|")
        raw = await redis.hgetall(PREFIX + member)  # type: ignore[misc]
        out[(account, operator)] = {_text(k): _text(v) for k, v in raw.items()}
    return out


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
