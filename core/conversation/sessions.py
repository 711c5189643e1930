"""Conversation sessions in Redis, written with compare-and-set on a version.

Invariant: of two turns of one session read at the same version, only one can write its result;
the other gets :class:`SessionConflict` and must not answer as if it had applied (the channel
answers "please wait" or replays). Sessions are compact JSON under
``airgate:s:<channel>:{<user>}:<session id>`` with a TTL per channel, refreshed on every write; an
expired session reads as ``None`` and the engine starts over, saying so.

A gateway that sends the whole path of inputs (Africa's Talking's ``text``, every PIN typed in
it) has that path kept as :class:`PathKeeper` writes it: its length and a keyed digest, never the
text, so a PIN is not in Redis for the session's TTL (nor can a 4-digit one be guessed from the
digest without the key, derived from the PIN pepper).

The same write may set or delete the user's *resume point* (``airgate:r:<channel>:{<user>}``,
2 minutes): the journey a redial offers to continue. One script, one round trip per turn. Both
keys name the user by ``<user>``, a keyed digest of their reference (a phone number on USSD), never
the number; in braces, it is their hash tag: on a Redis Cluster a user's session and resume point
share a slot, so the one script may write both.
A Redis that cannot be reached is StoreUnavailable (core/stores.py), never redis-py's error.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import operator
from collections.abc import Awaitable, Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Any, Generic

import msgspec
from typing_extensions import TypeVar

from core.errors import Conflict
from core.i18n import DEFAULT_LANGUAGE
from core.logging import get_logger
from core.redis import Client
from core.redis_pipeline import Lua, hot_client
from core.stores import redis_errors

KEY_PREFIX = "airgate:s"
RESUME_PREFIX = "airgate:r"
RESUME_TTL_MS = 120_000  # "redialling within 2 minutes offers to continue"
REF_KEY_PURPOSE = "session-ref"  # PinHasher.subkey(...): the key a resume point's user is hidden by

log = get_logger(__name__)

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
# Sessions and resume points are compact JSON, UTF-8 as stored, encoded and validated by msgspec
# (docs/DEPENDENCIES.md). The field names stored: "v" is read by _CAS above.
_SHORT_NAMES = {
    "state": "s",
    "data": "d",
    "version": "v",
    "party": "p",
    "role": "r",
    "lang": "l",
    "journey": "k",
    "history": "h",
    "page": "pg",
    "path": "m",
    "hop": "sq",
    "ended": "x",
    "offered": "o",
}
_encode = msgspec.json.Encoder().encode


class SessionConflict(Conflict):
    code = "session_conflict"
    template = "session {key!r} changed under this turn"


class Journey(msgspec.Struct, omit_defaults=True, kw_only=True, tag_field="j"):
    """What one journey's steps collect: each flow declares a subclass with its named fields,
    each stored under a short name (``msgspec.field(name=...)``) and a short tag of its own
    (``class Topup(Journey, tag="top")``), so a stored one says which it is and is validated as
    that. The session store decodes the kinds it is given (``SessionStore(journeys=...)``); a
    stored journey of another kind, or whose fields do not fit, reads as no session (expired).
    """


# The kinds of journey data a session holds: any Journey to the code, the flows' own (a tagged
# union) to the store's decoder (Session[Order | Buy | ...]).
D = TypeVar("D", bound=Journey, default=Journey)


class ResumePoint(
    msgspec.Struct,
    Generic[D],
    omit_defaults=True,
    rename={"state": "s", "party": "p", "data": "d"},
):
    """Where a dropped journey was: its step, whose it was, and what its flow had collected."""

    state: str
    party: int
    data: D | None = None


class Session(msgspec.Struct, Generic[D], omit_defaults=True, rename=_SHORT_NAMES):
    """One conversation: the flow's ``state`` and what this journey's steps collected (``data``,
    the flow's own :class:`Journey`; none at the menu), the engine's own fields by name, and
    ``version``, the version it was read at.

    Stored as compact JSON: short names, and a field at its default not written at all (a
    mid-journey session is about 200 bytes; tests/integration/test_sessions.py holds it under
    1 KB). Validated on load: a stored session that does not fit reads as none (expired).
    """

    state: str
    data: D | None = None
    version: int = 0
    party: int | None = None  # the party acting, once known
    role: str = ""  # its role: which flow
    lang: str = DEFAULT_LANGUAGE
    journey: str = ""  # this journey's own random part of its idempotency keys
    history: list[str] = []  # the steps ``0`` goes back to
    page: int = 0  # the page of the options shown
    path: str = ""  # the gateway's path of inputs as PathKeeper keeps it
    hop: int = -1  # the gateway's number of the last hop applied
    ended: str = ""  # the final screen's text, replayed to a retry
    offered: ResumePoint[D] | None = None  # the journey the resume offer continues

    def dumps(self, version: int) -> bytes:
        """The stored form at ``version`` (the one this write makes)."""
        read, self.version = self.version, version
        try:
            return _encode(self)
        finally:
            self.version = read


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


def session_key(channel: str, session_id: str, user: str) -> str:
    """Where a session is kept; ``user``: :meth:`SessionStore.user`, its hash tag."""
    return f"{KEY_PREFIX}:{channel}:{{{user}}}:{session_id}"


@dataclass(frozen=True, slots=True)
class Resume:
    """What to do with the user's resume point in the same write: set it, or drop it (no
    Resume: keep it)."""

    point: ResumePoint | None  # None: delete it


class SessionStore:
    def __init__(
        self,
        redis: Client,
        *,
        ttl_s: dict[str, int],
        ref_key: bytes,
        journeys: Iterable[type[Journey]] = (),
    ) -> None:
        """``ref_key``: the secret a user's reference is digested with in their keys.
        ``journeys``: the kinds of a session's ``data`` (every flow's), the only ones it loads."""
        self._session, self._point = _decoders(tuple(journeys))
        self._ref_key = ref_key
        self._hot = hot_client(redis)  # GET and EVALSHA on every turn
        self._ttl_ms = {channel: seconds * 1000 for channel, seconds in ttl_s.items()}

    async def load(self, channel: str, session_id: str, user_ref: str) -> Session | None:
        key = session_key(channel, session_id, self.user(channel, user_ref))
        with redis_errors():
            raw = await self._hot.get(key)
        return None if raw is None else _decoded(self._session, raw, "session")

    async def save(
        self,
        channel: str,
        session_id: str,
        session: Session,
        *,
        user_ref: str,
        resume: Resume | None = None,
    ) -> Session:
        """Write ``session`` (``user_ref``'s) over the version it was read at; raise
        SessionConflict if another turn wrote first. Returns it at its new version."""
        user = self.user(channel, user_ref)
        key = session_key(channel, session_id, user)
        new_version = session.version + 1
        keys = [key]
        args: list[str | bytes] = [
            str(session.version),
            session.dumps(new_version),
            str(self._ttl_ms[channel]),
        ]
        if resume is not None:
            keys.append(_resume_key(channel, user))
            if resume.point is None:
                args.append("del")
            else:
                args += ["set", _encode(resume.point), str(RESUME_TTL_MS)]
        with redis_errors():
            written = await _CAS(self._hot, keys, args)
        if not written:
            raise SessionConflict(key=key)
        session.version = new_version
        return session

    def user(self, channel: str, user_ref: str) -> str:
        """The user in their keys: a digest of their reference keyed by a secret (a digest of a
        phone number without a key is found again by trying every number)."""
        mac = hmac.new(self._ref_key, f"{channel}:{user_ref}".encode(), hashlib.sha256)
        return mac.digest()[:PATH_DIGEST_BYTES].hex()

    def session_key(self, channel: str, session_id: str, user_ref: str) -> str:
        return session_key(channel, session_id, self.user(channel, user_ref))

    def resume_key(self, channel: str, user_ref: str) -> str:
        return _resume_key(channel, self.user(channel, user_ref))

    def resume_point(self, channel: str, user_ref: str) -> Awaitable[ResumePoint | None]:
        """The user's resume point, asked now and in flight until awaited (the engine asks the
        database who is calling meanwhile). Not awaiting it is fine: the reply is dropped."""
        return _Decoded(self._hot.get(self.resume_key(channel, user_ref)), self._point)


def _resume_key(channel: str, user: str) -> str:
    return f"{RESUME_PREFIX}:{channel}:{{{user}}}"


def _decoders(
    journeys: tuple[type[Journey], ...],
) -> tuple[msgspec.json.Decoder[Session], msgspec.json.Decoder[ResumePoint]]:
    """Decoders of a session and of a resume point whose ``data`` is one of ``journeys`` (a
    tagged union, each telling itself by its tag) or none. The union is given here, not written
    in ``Session``, because the flows that declare it sit above this module."""
    kinds: Any = functools.reduce(operator.or_, journeys) if journeys else None  # Order | Buy...
    return msgspec.json.Decoder(Session[kinds]), msgspec.json.Decoder(ResumePoint[kinds])


def _decoded(decoder: msgspec.json.Decoder[Any], raw: bytes, what: str) -> Any:
    """``raw`` as ``decoder``'s type, or None when it does not fit (written by an older release,
    or damaged): read as expired, never half-applied."""
    try:
        return decoder.decode(raw)
    except msgspec.MsgspecError as exc:
        log.warning("a stored value that does not fit dropped", what=what, error=str(exc))
        return None


class _Decoded:
    """A resume point's reply in flight, decoded when awaited."""

    __slots__ = ("_decoder", "_reply")

    def __init__(
        self, reply: Awaitable[bytes | None], decoder: msgspec.json.Decoder[ResumePoint]
    ) -> None:
        self._reply = reply
        self._decoder = decoder

    def __await__(self) -> Generator[Any, None, ResumePoint | None]:
        with redis_errors():
            raw = yield from self._reply.__await__()
        return None if raw is None else _decoded(self._decoder, raw, "resume point")
