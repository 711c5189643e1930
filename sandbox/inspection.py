"""Sandbox-only routes for tests and the demo, without authentication (never part of the
aggregator's API): counters, the SMS a number was sent, and a reset."""

from __future__ import annotations

from aiohttp import web

from sandbox.dtone_store import DTONE
from sandbox.store import STORE

SMS_LIMIT_DEFAULT = 50
SMS_LIMIT_MAX = 1_000


async def stats(request: web.Request) -> web.Response:
    """``delivered`` counts distinct references that ended SUCCESSFUL; ``?reference=X`` adds how
    many times that one was delivered (0 or 1; more is a bug ``double_deliveries`` counts) and how
    many times it was sent (``sends_by_reference``: every valid ``POST /topups`` with it, repeats
    the sandbox answered with the first transaction included)."""
    return web.json_response(request.app[STORE].stats(request.query.get("reference")))


async def sms(request: web.Request) -> web.Response:
    """Recorded SMS, newest first, as a JSON list; ``?to=+2547…`` for one number (a ``+`` that the
    query string turned into a space is put back), ``?limit=`` (default 50)."""
    store = request.app[STORE]
    limit_text = request.query.get("limit", "")
    limit = min(int(limit_text), SMS_LIMIT_MAX) if limit_text.isdigit() else SMS_LIMIT_DEFAULT
    to = request.query.get("to")
    if to is None:
        records = store.sms
    else:
        number = to.strip()
        records = store.sms_by_number.get(number if number.startswith("+") else "+" + number, [])
    return web.json_response([r.to_json() for r in records[: -limit - 1 : -1]])


async def reset(request: web.Request) -> web.Response:
    """Forget every token, transaction and SMS; the balance goes back to its initial value."""
    request.app[STORE].reset()
    request.app[DTONE].reset()
    return web.json_response({"reset": True})
