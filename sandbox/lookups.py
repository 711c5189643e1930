"""Read-only aggregator routes: operators (list, by id, auto-detect) and the account balance."""

from __future__ import annotations

from aiohttp import web

from sandbox import operators
from sandbox.auth import authorized
from sandbox.store import STORE
from sandbox.wire import error, format_date, major


@authorized
async def by_country(request: web.Request) -> web.Response:
    found = operators.for_country(request.match_info["iso"].upper())
    return web.json_response([op.to_json() for op in found])


@authorized
async def by_id(request: web.Request) -> web.Response:
    text = request.match_info["operator_id"]
    operator = operators.OPERATORS.get(int(text)) if text.isdigit() else None
    if operator is None:
        return error(404, "OPERATOR_NOT_FOUND", "No such operator", request.path)
    return web.json_response(operator.to_json())


@authorized
async def auto_detect(request: web.Request) -> web.Response:
    iso = request.match_info["iso"].upper()
    if iso != operators.COUNTRY:
        return error(404, "COUNTRY_NOT_SUPPORTED", f"{iso} is not served", request.path)
    e164 = operators.normalize(request.match_info["phone"], iso)
    if e164 is None:
        return error(400, "INVALID_PHONE_NUMBER", "Not a valid phone number", request.path)
    operator = operators.detect(e164)
    if operator is None:
        return error(404, "COULD_NOT_AUTO_DETECT_OPERATOR", "Unknown operator", request.path)
    return web.json_response(operator.to_json())


@authorized
async def balance(request: web.Request) -> web.Response:
    store = request.app[STORE]
    return web.json_response(
        {
            "balance": major(store.balance_minor),
            "currencyCode": operators.CURRENCY,
            "currencyName": operators.CURRENCY_NAME,
            "updatedAt": format_date(store.balance_at),
        }
    )
