"""Hubtel: JSON, the last input only; a ``Release`` or ``Timeout`` request never reaches the engine.

``Type`` says what the hop is: ``Initiation`` starts a session (its ``Message`` is the dialled
string, ``*714*5#``, not an answer: the session starts at the menu, shortcut paths are not taken),
``Response`` carries the user's input, and ``Release``/``Timeout`` say the user already left, which
is answered with an empty ``Release`` (``Hangup``). ``ClientState`` is echoed back on every screen.
"""

from __future__ import annotations

from aiohttp import web

from core.conversation.types import Turn
from ussd.channel import CHANNEL
from ussd.gateway import BadRequest, Dialect, Echo, Hangup, field_text, phone, read_json

INITIATION, RESPONSE, RELEASE, TIMEOUT = "Initiation", "Response", "Release", "Timeout"
TYPES = (INITIATION, RESPONSE, RELEASE, TIMEOUT)
MAX_HOP = 1_000_000_000  # a Sequence is a count of hops: 9 digits, as every count (gateway.whole)


async def parse(request: web.Request) -> tuple[Turn, Echo]:
    """Fields ``Type``, ``SessionId``, ``Mobile``, ``Message``, ``ClientState`` and ``Sequence``
    (the hop's number in the session: a retried hop comes with the same number and is answered
    with the current screen, not applied twice; ``ServiceCode`` and ``Operator`` are not needed).
    """
    body = await read_json(request)
    kind = field_text(body, "Type")
    if kind not in TYPES:
        raise BadRequest(f"Type must be one of {', '.join(TYPES)}")
    session_id = field_text(body, "SessionId")
    msisdn = phone(field_text(body, "Mobile"))
    message = field_text(body, "Message", required=False)
    echo = {"ClientState": field_text(body, "ClientState", required=False)}
    if kind in (RELEASE, TIMEOUT):
        raise Hangup
    text = "" if kind == INITIATION else message
    sequence = body.get("Sequence")
    # A hop's number, as a count is: at most 9 digits (anything else is no number to go by).
    hop = None
    if isinstance(sequence, int) and not isinstance(sequence, bool) and 0 <= sequence < MAX_HOP:
        hop = sequence
    turn = Turn(
        CHANNEL.name, f"hubtel:{session_id}", msisdn, text, is_new=kind == INITIATION, hop=hop
    )
    return turn, echo


def respond(page: str, final: bool, echo: Echo) -> web.Response:
    """``Release`` closes the session, ``Response`` waits for the user's answer."""
    return web.json_response({"Type": RELEASE if final else RESPONSE, "Message": page, **echo})


DIALECT = Dialect(name="hubtel", parse=parse, reply=respond)
