"""``Idempotency-Key`` on every POST: the same key and request get the stored response; the same key
with another request is a 409; concurrent duplicates produce one effect.

Invariant: a request runs only after it claimed its key in Redis (SET NX of an in-progress marker
carrying the request's fingerprint), so of two concurrent duplicates one runs and the other waits
for its response (at most WAIT_S, then 409 "in progress"). A response is kept for
AIRGATE_API_IDEMPOTENCY_TTL_S, unless it is a 5xx: then the claim is dropped and a retry runs
again. Behind this, each service is keyed by the same key (a top-up's ``client_key``, a sale's
key, a deposit's reference), so even a lost Redis record cannot make a second effect.

Redis keys name the party and a hash of the client's key, never the body.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass

import orjson

from core.redis_pipeline import HotClient, Lua

PREFIX = "airgate:api:idem:"
MAX_KEY_CHARS = 255
RUNNING_TTL_S = 60  # a claim outlives any request (the HTTP layer gives up long before)
WAIT_S = 5.0  # how long a duplicate waits for the first one's response
POLL_S = 0.02


@dataclass(frozen=True, slots=True)
class Stored:
    status: int
    body: bytes
    content_type: str


class InProgress(Exception):
    """The same key's first request is still running."""


class Mismatch(Exception):
    """The same key was used for a different request."""


def fingerprint(method: str, path: str, canonical_body: bytes) -> str:
    return hashlib.sha256(b"\0".join([method.encode(), path.encode(), canonical_body])).hexdigest()


# KEYS: the request's key. ARGV: the in-progress marker, its TTL (s). Claims the key (nil) or
# returns what it holds: one round trip.
_CLAIM = Lua("""
local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false
""")


def redis_key(party_id: int, key: str) -> str:
    """Where a party's Idempotency-Key is kept: a hash of it, never the client's text."""
    return f"{PREFIX}{party_id}:{hashlib.sha256(key.encode()).hexdigest()[:32]}"


class Idempotency:
    def __init__(self, redis: HotClient, *, ttl_s: int) -> None:
        self._redis = redis
        self._ttl_s = ttl_s

    async def claim(self, where: str, fp: str) -> Stored | None:
        """None: this request holds the key now and runs. Else the stored response of the same
        request (Mismatch for another request, InProgress if it still runs after WAIT_S)."""
        marker = orjson.dumps({"fp": fp})
        deadline = time.monotonic() + WAIT_S
        while True:
            raw = await _CLAIM(self._redis, [where], [marker, RUNNING_TTL_S])
            if raw is None:
                return None
            held = orjson.loads(raw)
            if held["fp"] != fp:
                raise Mismatch
            if "status" in held:
                return Stored(held["status"], held["body"].encode("latin-1"), held["type"])
            if time.monotonic() >= deadline:
                raise InProgress
            await asyncio.sleep(POLL_S)

    async def store(self, where: str, fp: str, response: Stored) -> None:
        value = {
            "fp": fp,
            "status": response.status,
            "body": response.body.decode("latin-1"),
            "type": response.content_type,
        }
        await self._redis.execute_command("SET", where, orjson.dumps(value), "EX", self._ttl_s)

    async def release(self, where: str) -> None:
        await self._redis.execute_command("DEL", where)
