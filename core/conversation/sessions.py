"""Conversation sessions in Redis, written with compare-and-set on a version.

Invariant: of two turns of one session read at the same version, only one can write its result;
the other gets :class:`SessionConflict` and must not answer as if it had applied (the channel
answers "please wait" or replays). Sessions are compact JSON under
``airgate:s:{channel}:{session_id}`` with a TTL per channel, refreshed on every write; an expired
session reads as ``None`` and the engine starts over, saying so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from core.errors import Conflict

KEY_PREFIX = "airgate:s"

# Write only if the stored version is still the one we read (0: no session yet); then bump it.
_CAS = """
local current = redis.call('GET', KEYS[1])
local version = 0
if current then version = cjson.decode(current)['v'] end
if version ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""


class SessionConflict(Conflict):
    code = "session_conflict"
    template = "session {key!r} changed under this turn"


@dataclass(slots=True)
class Session:
    """``state``: the flow's state; ``data``: what the flow collected; ``v``: the version read."""

    state: str
    data: dict[str, Any] = field(default_factory=dict)
    version: int = 0

    def dumps(self, version: int) -> str:
        body = {"v": version, "s": self.state, "d": self.data}
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def session_key(channel: str, session_id: str) -> str:
    return f"{KEY_PREFIX}:{channel}:{session_id}"


class SessionStore:
    def __init__(self, redis: aioredis.Redis, *, ttl_s: dict[str, int]) -> None:
        self._redis = redis
        self._ttl_ms = {channel: seconds * 1000 for channel, seconds in ttl_s.items()}
        self._cas = redis.register_script(_CAS)

    async def load(self, channel: str, session_id: str) -> Session | None:
        raw = await self._redis.get(session_key(channel, session_id))
        if raw is None:
            return None
        body = json.loads(raw)
        return Session(state=body["s"], data=body["d"], version=int(body["v"]))

    async def save(self, channel: str, session_id: str, session: Session) -> Session:
        """Write ``session`` over the version it was read at; raise SessionConflict if another
        turn wrote first. Returns it at its new version."""
        key = session_key(channel, session_id)
        new_version = session.version + 1
        written = await self._cas(
            keys=[key], args=[session.version, session.dumps(new_version), self._ttl_ms[channel]]
        )
        if not written:
            raise SessionConflict(key=key)
        session.version = new_version
        return session

    async def end(self, channel: str, session_id: str) -> None:
        await self._redis.delete(session_key(channel, session_id))
