"""Arkesel: JSON, the last input only; ``newSession`` must be a real JSON boolean.

On a new session ``userData`` is the dialled string, not an answer: the session starts at the menu.
``sessionID``, ``userID`` and ``msisdn`` are echoed back on every screen, with ``continueSession``
false on the last one.
"""

from __future__ import annotations

from aiohttp import web

from core.conversation.types import Turn
from ussd.channel import CHANNEL
from ussd.gateway import BadRequest, Dialect, Echo, field_text, phone, read_json


async def parse(request: web.Request) -> tuple[Turn, Echo]:
    """Fields ``sessionID``, ``userID``, ``newSession``, ``msisdn`` and ``userData``
    (``network`` is not needed: the operator comes from the catalog)."""
    body = await read_json(request)
    session_id = field_text(body, "sessionID")
    user_id = field_text(body, "userID", required=False)
    raw_msisdn = field_text(body, "msisdn")
    msisdn = phone(raw_msisdn)
    new = body.get("newSession")
    if not isinstance(new, bool):
        raise BadRequest("newSession must be true or false")
    data = field_text(body, "userData", required=False)
    echo = {"sessionID": session_id, "userID": user_id, "msisdn": raw_msisdn}
    return Turn(
        CHANNEL.name, f"arkesel:{session_id}", msisdn, "" if new else data, is_new=new
    ), echo


def respond(page: str, final: bool, echo: Echo) -> web.Response:
    """``continueSession`` false closes the session."""
    return web.json_response({**echo, "message": page, "continueSession": not final})


DIALECT = Dialect(name="arkesel", parse=parse, reply=respond)
