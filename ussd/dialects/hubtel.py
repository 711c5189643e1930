"""Hubtel: JSON, the last input only; read as liberally as Hubtel's own SDK reads it.

``Type`` says what the hop is, in any letter case (Hubtel's docs send ``initiation``, older
integrations ``Initiation``; the official .NET SDK lowercases it): ``initiation`` starts a session
(its ``Message`` is the dialled string, ``*714*5#``, not an answer: the session starts at the
menu, shortcut paths are not taken), and so do ``query`` and ``favorite`` (the SDK's kinds of
initiation; AirGate keeps no favourite steps); ``response`` carries the user's input;
``release``/``timeout`` say the user already left, which is answered with an empty ``Release``
(``Hangup``); ``addtocart`` (Hubtel's checkout) is answered with a polite ``Release`` saying it is
not available (``Farewell``). Field names are read in any letter case, as Json.NET binds them.

Every reply carries ``Label``, ``DataType`` and ``FieldType``, which Hubtel's app, POS and web
channels render the screen by; ``ClientState`` is echoed back on every screen.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from core.conversation.types import Expects, Screen, Turn
from ussd.channel import CHANNEL
from ussd.gateway import BadRequest, Dialect, Echo, Farewell, Hangup, field_text, phone, read_json
from ussd.gateway import whole as count

STARTS = frozenset({"initiation", "query", "favorite"})
LEFT = frozenset({"release", "timeout"})
TYPES = ("Initiation", "Response", "Release", "Timeout", "Query", "Favorite", "AddToCart")
# What an input screen's keypad is (Hubtel's FieldType): a PIN and an amount are whole numbers.
FIELD_TYPES = {
    Expects.MSISDN: "phone",
    Expects.CONTACT: "phone",
    Expects.AMOUNT: "number",
    Expects.PIN: "number",
}


class Fields(dict[str, Any]):
    """A JSON object's fields by name in any letter case (of two names differing only in case,
    the later one counts, as Json.NET binds them)."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__((key.lower(), value) for key, value in body.items())

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)


async def parse(request: web.Request) -> tuple[Turn, Echo]:
    """Fields ``Type``, ``SessionId``, ``Mobile``, ``Message``, ``ClientState`` and ``Sequence``
    (the hop's number in the session, a number or a string of digits: a retried hop comes with the
    same number and is answered with the current screen, not applied twice; ``ServiceCode``,
    ``Operator`` and ``Platform`` are not needed).
    """
    body = Fields(await read_json(request))
    kind = field_text(body, "Type").lower()
    if kind not in STARTS | LEFT | {"response", "addtocart"}:
        raise BadRequest(f"Type must be one of {', '.join(TYPES)}")
    session_id = field_text(body, "SessionId")
    msisdn = phone(field_text(body, "Mobile"))
    message = field_text(body, "Message", required=False)
    echo = {"ClientState": field_text(body, "ClientState", required=False)}
    if kind in LEFT:
        raise Hangup
    if kind == "addtocart":
        raise Farewell(msisdn)
    new = kind in STARTS
    text = "" if new else message
    turn = Turn(CHANNEL.name, f"hubtel:{session_id}", msisdn, text, is_new=new, hop=_hop(body))
    return turn, echo


def _hop(body: Fields) -> int | None:
    """``Sequence`` as a count (the docs send ``"1"``, older integrations ``1``): at most 9
    digits; anything else is no number to go by, and the hop is taken as it comes."""
    sequence = body.get("Sequence")
    if isinstance(sequence, int) and not isinstance(sequence, bool):
        sequence = str(sequence)
    return count(sequence) if isinstance(sequence, str) else None


def describe(screen: Screen) -> Echo:
    """What Hubtel's apps render: a menu of options, an input with its keypad, or a display,
    titled (``Label``) by the screen's first line."""
    label = screen.text.split("\n", 1)[0]
    if screen.final:
        kind, field = "display", "text"
    elif screen.options and screen.expects is Expects.CHOICE:
        kind, field = "menu", "text"
    else:
        kind, field = "input", FIELD_TYPES.get(screen.expects, "text")
    return {"Label": label, "DataType": kind, "FieldType": field}


def respond(page: str, final: bool, echo: Echo) -> web.Response:
    """``Release`` closes the session, ``Response`` waits for the user's answer; a screen the
    engine did not describe (a hangup, a farewell) is a display titled by its first line."""
    fields = {"Label": page.split("\n", 1)[0], "DataType": "display"}
    fields["FieldType"] = "text"
    reply = {"Type": "Release" if final else "Response", "Message": page, **fields, **echo}
    return web.json_response(reply)


DIALECT = Dialect(name="hubtel", parse=parse, reply=respond, describe=describe)
