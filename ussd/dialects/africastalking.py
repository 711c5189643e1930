"""Africa's Talking: ``text`` is the whole path of the session's inputs joined by ``*``.

The engine wants the last input only. An input may itself contain ``*`` (``*144#`` typed as a
number, a PIN pad habit), so splitting the path on ``*`` is wrong: the session keeps the last path
it saw, and the new input is whatever follows it (PROTOCOLS.md). Without a kept path (the first
hop, or a session that expired) the input is the last ``*``-separated part, which is all a gateway
that restarted the session can give.

The path holds every PIN typed in the session, so the session keeps only its length and a keyed
digest (core.conversation.sessions.PathKeeper): the new input follows a prefix of that length
whose digest is the kept one.
"""

from __future__ import annotations

from aiohttp import web

from core.conversation.sessions import SeenPath
from core.conversation.types import Turn
from ussd.channel import CHANNEL
from ussd.gateway import (
    Dialect,
    Echo,
    SessionEnd,
    field_text,
    path_text,
    phone,
    read_form,
    whole,
)

CONTINUE, END = "CON", "END"


def last_input(text: str, *, previous: SeenPath | None) -> str:
    """The newest input in ``text`` given the path seen on the previous hop."""
    if not text:
        return ""
    if previous is not None and previous.length == 0:  # the first hop had no input: all is one
        return text
    if previous is not None:
        cut = previous.length
        if text[cut : cut + 1] == "*" and previous.is_it(text[:cut]):
            return text[cut + 1 :]
        if len(text) == cut and previous.is_it(text):  # a gateway retry of the same hop
            return ""
    return text.rsplit("*", 1)[-1]


def reply(page: str, *, final: bool) -> str:
    """The ``text/plain`` body: ``CON`` keeps the session open, ``END`` closes it."""
    return f"{END if final else CONTINUE} {page}"


async def parse(request: web.Request) -> tuple[Turn, Echo]:
    """Form fields ``sessionId``, ``phoneNumber`` and ``text`` (``serviceCode`` and
    ``networkCode`` are not needed: the operator comes from the catalog)."""
    form = await read_form(request)
    session_id = field_text(form, "sessionId")
    msisdn = phone(field_text(form, "phoneNumber"))
    text = path_text(form, caller=msisdn)
    turn = Turn(CHANNEL.name, f"at:{session_id}", msisdn, text, is_new=text == "")
    return turn, {}


def respond(page: str, final: bool, _echo: Echo) -> web.Response:
    return web.Response(text=reply(page, final=final), content_type="text/plain")


async def session_end(request: web.Request) -> SessionEnd:
    """The end-of-session notification: ``status`` Success | Incomplete | Failed, with
    ``errorMessage``, ``hopsCount``, ``durationInMillis`` and ``cost``."""
    form = await read_form(request)
    return SessionEnd(
        session_id=f"at:{field_text(form, 'sessionId')}",
        msisdn=phone(field_text(form, "phoneNumber")),
        status=field_text(form, "status")[:16],
        error=field_text(form, "errorMessage", required=False)[:200] or None,
        hops=whole(field_text(form, "hopsCount", required=False)),
        duration_ms=whole(field_text(form, "durationInMillis", required=False)),
        cost=field_text(form, "cost", required=False)[:24] or None,
    )


DIALECT = Dialect(
    name="africastalking",
    parse=parse,
    reply=respond,
    last_input=lambda text, previous: last_input(text, previous=previous),
    session_end=session_end,
)
