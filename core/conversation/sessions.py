"""Conversation sessions in Redis, written with compare-and-set on a version.

Invariant: of two turns of one session read at the same version, only one can write its result;
the other gets :class:`SessionConflict` and must not answer as if it had applied (the channel
answers "please wait" or replays). Sessions are compact JSON under
``airgate:s:{channel}:{session_id}`` with a TTL per channel, refreshed on every write; an expired
session reads as ``None`` and the engine starts over, saying so.

A gateway that sends the whole path of inputs (Africa's Talking's ``text``, every PIN typed in
it) has that path kept as :class:`PathKeeper` writes it: its length and a keyed digest, never the
text, so a PIN is not in Redis for the session's TTL (nor can a 4-digit one be guessed from the
digest without the key, derived from the PIN pepper).

The same write may set or delete the user's *resume point* (``airgate:r:{channel}:{digest}``,
2 minutes): the journey a redial offers to continue. One script, one round trip per turn. The key
names the user by a keyed digest of their reference (a phone number on USSD), never the number.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis

from core.errors import Conflict
from core.redis_pipeline import Lua, PipelinedRedis

KEY_PREFIX = "airgate:s"
RESUME_PREFIX = "airgate:r"
RESUME_TTL_MS = 120_000  # "redialling within 2 minutes offers to continue"
REF_KEY_PURPOSE = "session-ref"  # PinHasher.subkey(...): the key a resume point's user is hidden by

# Write only if the stored version is still the one we read (0: no session yet); then bump it,
# and set (ARGV[4] 'set') or delete ('del') the resume point.
_CAS = Lua("""
local current = redis.call('GET', KEYS[1])
local version = 0
if current then version = cjson.decode(current)['v'] end
if version ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
if ARGV[4] == 'set' then
  redis.call('SET', KEYS[2], ARGV[5], 'PX', ARGV[6])
elseif ARGV[4] == 'del' then
  redis.call('DEL', KEYS[2])
end
return 1
""")
# Sessions and resume points are compact JSON, UTF-8 as stored, through orjson: a tenth of the
# standard library's CPU for an encode and a third for a decode (docs/DEPENDENCIES.md).


class SessionConflict(Conflict):
    code = "session_conflict"
    template = "session {key!r} changed under this turn"


@dataclass(slots=True)
class Session:
    """``state``: the flow's state; ``data``: what the flow collected; ``v``: the version read."""

    state: str
    data: dict[str, Any] = field(default_factory=dict)
    version: int = 0

    def dumps(self, version: int) -> bytes:
        body = {"v": version, "s": self.state, "d": self.data}
        return orjson.dumps(body)


PATH_DIGEST_BYTES = 16  # 128 bits: a collision by chance never happens in a session's life


@dataclass(frozen=True, slots=True)
class SeenPath:
    """The previous hop's path as the session kept it: its length, and whether a text is it."""

    length: int
    is_it: Callable[[str], bool]


class PathKeeper:
    """Keeps a path of inputs as ``"<length>:<keyed digest>"``: enough to tell a gateway's retry
    (the same path again) and to find the new input (what follows the kept path), without the
    path's PINs."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def keep(self, path: str) -> str:
        return f"{len(path)}:{self._digest(path)}"

    def seen(self, kept: object) -> SeenPath | None:
        """The kept path, or None when there is none (or one written before paths were kept
        this way: the new input is then the last ``*``-separated part)."""
        length, _, digest = kept.partition(":") if isinstance(kept, str) else ("", "", "")
        if not (length.isascii() and length.isdigit() and digest):
            return None
        return SeenPath(int(length), lambda text: hmac.compare_digest(self._digest(text), digest))

    def _digest(self, path: str) -> str:
        mac = hmac.new(self._key, path.encode(errors="surrogatepass"), hashlib.sha256)
        return mac.digest()[:PATH_DIGEST_BYTES].hex()


def session_key(channel: str, session_id: str) -> str:
    return f"{KEY_PREFIX}:{channel}:{session_id}"


@dataclass(frozen=True, slots=True)
class Resume:
    """What to do with the user's resume point in the same write: keep it, set it, or drop it."""

    user_ref: str
    point: dict[str, Any] | None  # None: delete it


class SessionStore:
    def __init__(self, redis: aioredis.Redis, *, ttl_s: dict[str, int], ref_key: bytes) -> None:
        """``ref_key``: the secret a user's reference is digested with in a resume point's key
        (a digest of a phone number without a key is found again by trying every number)."""
        self._redis = redis
        self._ref_key = ref_key
        self._hot = PipelinedRedis(redis.connection_pool)  # GET and EVALSHA on every turn
        self._ttl_ms = {channel: seconds * 1000 for channel, seconds in ttl_s.items()}

    async def load(self, channel: str, session_id: str) -> Session | None:
        raw = await self._hot.get(session_key(channel, session_id))
        if raw is None:
            return None
        body = orjson.loads(raw)
        return Session(state=body["s"], data=body["d"], version=int(body["v"]))

    async def save(
        self, channel: str, session_id: str, session: Session, *, resume: Resume | None = None
    ) -> Session:
        """Write ``session`` over the version it was read at; raise SessionConflict if another
        turn wrote first. Returns it at its new version."""
        key = session_key(channel, session_id)
        new_version = session.version + 1
        keys = [key]
        args: list[str | bytes] = [
            str(session.version),
            session.dumps(new_version),
            str(self._ttl_ms[channel]),
        ]
        if resume is not None:
            keys.append(self.resume_key(channel, resume.user_ref))
            if resume.point is None:
                args.append("del")
            else:
                point = orjson.dumps(resume.point)
                args += ["set", point, str(RESUME_TTL_MS)]
        if not await _CAS(self._hot, keys, args):
            raise SessionConflict(key=key)
        session.version = new_version
        return session

    def resume_key(self, channel: str, user_ref: str) -> str:
        mac = hmac.new(self._ref_key, f"{channel}:{user_ref}".encode(), hashlib.sha256)
        return f"{RESUME_PREFIX}:{channel}:{mac.digest()[:PATH_DIGEST_BYTES].hex()}"

    def resume_point(self, channel: str, user_ref: str) -> Awaitable[dict[str, Any] | None]:
        """The user's resume point, asked now and in flight until awaited (the engine asks the
        database who is calling meanwhile). Not awaiting it is fine: the reply is dropped."""
        return _Decoded(self._hot.get(self.resume_key(channel, user_ref)))

    async def end(self, channel: str, session_id: str) -> None:
        await self._redis.delete(session_key(channel, session_id))


class _Decoded:
    """A resume point's reply in flight, decoded when awaited."""

    __slots__ = ("_reply",)

    def __init__(self, reply: Awaitable[bytes | None]) -> None:
        self._reply = reply

    def __await__(self) -> Generator[Any, None, dict[str, Any] | None]:
        raw = yield from self._reply.__await__()
        return None if raw is None else dict(orjson.loads(raw))
