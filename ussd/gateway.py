"""What a USSD dialect module provides, and how every gateway route is guarded.

A dialect reads its gateway's request into a ``Turn`` (plus the fields its reply must echo), or
raises ``Hangup`` when the request only says the user left, and writes a page of text back in its
gateway's format. Adding a gateway is one module in ``ussd/dialects/`` and one line in its
``DIALECTS``.

Invariant: a request that does not carry the gateway's secret, or comes from outside its allowed
networks, gets 403 before anything is read; a request the dialect cannot read gets 400 with a
one-line reason. Neither ever reaches the engine, and no response carries a traceback.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

from core.conversation.sessions import SeenPath
from core.conversation.types import Screen, Turn
from core.errors import InvalidMsisdn
from core.msisdn import normalize
from core.security import kept_secret
from core.settings import Settings, UssdGateway

SECRET_HEADER = "X-AirGate-Secret"
SECRET_QUERY = "token"
MAX_FIELD_CHARS = 512  # no gateway field is longer; a longer one is not a gateway's request
# Africa's Talking's ``text`` is the whole path of a session's inputs, and grows with every hop: a
# session lasts at most ~180 s, one input is at most 182 characters, and nobody types more than
# twenty long ones in three minutes (~3,700 characters). Twice that is still a real session; past
# it, the caller is told politely (error.too_long), never with an HTTP error.
MAX_PATH_CHARS = 8_192
# Set on a request whose body was past AIRGATE_HTTP_MAX_BODY_BYTES (airgate/server.py reads every
# body first, within its timeout).
BODY_TOO_LARGE = web.RequestKey("body_too_large", bool)
SESSION_ID_COLUMN_CHARS = 96  # ussd_session_end.session_id, the dialect's prefix included
# Control characters (tab and line breaks aside) and lone surrogates: no gateway sends them, and
# neither Redis (UTF-8) nor PostgreSQL (no NUL) can store them.
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


class BadRequest(Exception):
    """The request is not one this dialect can read: 400, with this message."""


class Farewell(Exception):
    """A request answered with one polite final screen saying ``key`` (in the caller's language,
    if known) and nothing else: the engine never sees it."""

    key = "error.unsupported"

    def __init__(self, user_ref: str | None = None) -> None:
        super().__init__(self.key)
        self.user_ref = user_ref


class TooLong(Farewell):
    """More than any real session sends (a path past MAX_PATH_CHARS, a body past
    AIRGATE_HTTP_MAX_BODY_BYTES)."""

    key = "error.too_long"


class Hangup(Exception):
    """The gateway reports that the user already left (Hubtel's ``Release``, ``Timeout``): the
    route answers the dialect's empty final reply and the engine is not called."""


Echo = dict[str, Any]  # request fields the reply must carry back (Hubtel, Arkesel)


@dataclass(frozen=True, slots=True)
class SessionEnd:
    """A gateway's report that a session ended (Africa's Talking's notification). A session id
    longer than its ``ussd_session_end`` column is a BadRequest, not a failed insert."""

    session_id: str
    msisdn: str
    status: str
    error: str | None = None
    hops: int | None = None
    duration_ms: int | None = None
    cost: str | None = None

    def __post_init__(self) -> None:
        if len(self.session_id) > SESSION_ID_COLUMN_CHARS:
            raise BadRequest("the session id is too long")


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str  # the route: POST /ussd/{name}
    parse: Callable[[web.Request], Awaitable[tuple[Turn, Echo]]]
    reply: Callable[[str, bool, Echo], web.Response]  # (page, final, echo)
    # For a gateway whose apps render a screen by its kind (Hubtel): reply fields saying what the
    # screen waits for, added to the echo of every screen the engine answers.
    describe: Callable[[Screen], Echo] | None = None
    # For a gateway that sends the whole path of inputs: the newest input given the last path.
    last_input: Callable[[str, SeenPath | None], str] | None = None
    # For a gateway that reports how sessions ended: POST /ussd/{name}/end.
    session_end: Callable[[web.Request], Awaitable[SessionEnd]] | None = None


def field_text(
    fields: Any, name: str, *, required: bool = True, limit: int = MAX_FIELD_CHARS
) -> str:
    """A request field as text, bounded; BadRequest names what is missing or wrong."""
    value = fields.get(name)
    if value is None or value == "":
        if required:
            raise BadRequest(f"missing {name}")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadRequest(f"{name} must be text")
    text = str(value)
    if len(text) > limit:
        raise BadRequest(f"{name} is too long")
    if _UNSTORABLE.search(text):
        raise BadRequest(f"{name} has characters that are not text")
    return text


def path_text(fields: Any, *, caller: str) -> str:
    """A path of inputs (Africa's Talking's ``text``) as text, up to MAX_PATH_CHARS; longer is
    TooLong for ``caller``."""
    value = fields.get("text")
    if isinstance(value, str) and len(value) > MAX_PATH_CHARS:
        raise TooLong(caller)
    return field_text({"text": value}, "text", required=False, limit=MAX_PATH_CHARS)


async def read_form(request: web.Request) -> Any:
    """The form fields; a body aiohttp cannot read as a form is a BadRequest, never a 500."""
    if request.get(BODY_TOO_LARGE):
        raise TooLong()
    try:
        return await request.post()
    except web.HTTPRequestEntityTooLarge:
        raise TooLong() from None
    # LookupError: an unknown charset; BadHttpMessage: a multipart line too long; RuntimeError: a
    # part's unknown Content-Transfer-Encoding.
    except (ValueError, LookupError, AssertionError, RuntimeError, BadHttpMessage) as exc:
        raise BadRequest("the body is not a form") from exc


async def read_json(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object; anything else is a BadRequest, never a 500."""
    if request.get(BODY_TOO_LARGE):
        raise TooLong()
    try:
        body = await request.json()
    except web.HTTPRequestEntityTooLarge:
        raise TooLong() from None
    except (ValueError, LookupError, RecursionError) as exc:  # an unknown charset; too deep
        raise BadRequest("the body is not JSON") from exc
    if not isinstance(body, dict):
        raise BadRequest("the body is not a JSON object")
    return body


def phone(text: str) -> str:
    """The caller's number as E.164 (gateways send ``+254…`` or ``254…``)."""
    e164 = _e164(text) if len(text) <= 16 else None  # E.164: at most 15 digits and a "+"
    if e164 is None:
        raise BadRequest("the phone number is not valid")
    return e164


@lru_cache(maxsize=65_536)
def _e164(text: str) -> str | None:
    """Cached: every hop of a session carries the same number, and parsing and validating it
    with phonenumbers costs more CPU than the rest of the hop's parsing (bench/ussd_journey.py).
    """
    candidate = text if text.startswith("+") else f"+{text}"
    try:
        return normalize(candidate, country="ZZ")
    except InvalidMsisdn:
        return None


def whole(text: str) -> int | None:
    """A count as the gateway wrote it, or None: at most 9 digits, so it fits a 32-bit column."""
    return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else None


@dataclass(frozen=True, slots=True)
class Guard:
    """One gateway's secret and allowed networks."""

    secret: str = field(repr=False)
    secret_in: str
    networks: tuple[IPv4Network | IPv6Network, ...] = field(default=())

    def allows(self, request: web.Request) -> bool:
        given = (
            request.headers.get(SECRET_HEADER, "")
            if self.secret_in == "header"
            else request.query.get(SECRET_QUERY, "")
        )
        # A header's non-UTF-8 bytes arrive as surrogates: compare them as bytes, never fail.
        if not hmac.compare_digest(given.encode(errors="surrogatepass"), self.secret.encode()):
            return False
        if not self.networks:
            return True
        try:
            address = ip_address(request.remote or "")
        except ValueError:
            return False
        return any(address in network for network in self.networks)


def guard_for(settings: Settings, name: str, config: UssdGateway) -> Guard:
    secret = config.secret.get_secret_value() or shared_secret(settings)
    networks = tuple(ip_network(item, strict=False) for item in config.allow_ips)
    return Guard(secret=secret, secret_in=config.secret_in, networks=networks)


def shared_secret(settings: Settings) -> str:
    """``AIRGATE_USSD_SECRET``, or one generated once and kept in ``var_dir/ussd_secret`` (0600)
    so the embedded demo's routes are guarded too and ``airgate phone`` can dial them."""
    path = Path(settings.var_dir) / "ussd_secret"
    return kept_secret(
        configured=settings.ussd_secret.get_secret_value(), path=path, make=secrets.token_urlsafe
    )
