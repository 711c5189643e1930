"""The sandbox's DT One face: DT One's DVS API v1 shapes under ``/v1``, HTTP Basic auth.

``POST /v1/async/transactions`` answers 201 with the transaction ``CONFIRMED`` (DT One's async
mode); its final status shows on ``GET /v1/transactions/{id}`` and
``GET /v1/transactions?external_id=``.
The outcome comes from the same last-digit rules as the Reloadly face (sandbox/rules.py); an unknown
outcome here is DT One's own: ``SUBMITTED`` until ``settle_s`` after arrival, then ``COMPLETED`` or
``DECLINED`` (docs/PROVIDERS.md, "DT One"). ``/sandbox/dtone/stats`` counts as ``/sandbox/stats``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import secrets
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from aiohttp import web

from sandbox import operators
from sandbox.dtone_store import DTONE, PRODUCTS, DtOneState, Product, Transaction
from sandbox.rules import Outcome, choose
from sandbox.wire import loads, major, parse_date, to_minor

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PER_PAGE_DEFAULT = 50
PER_PAGE_MAX = 100
PENDING = frozenset({"CONFIRMED", "SUBMITTED"})


class Invalid(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def errors(status: int, code: int, message: str) -> web.Response:
    """DT One's error body: ``{"errors": [{"code", "message"}]}``."""
    return web.json_response({"errors": [{"code": code, "message": message}]}, status=status)


def authorized(handler: Handler) -> Handler:
    """Run ``handler`` only with the API key and secret as HTTP Basic credentials."""

    @wraps(handler)
    async def checked(request: web.Request) -> web.StreamResponse:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            given = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            given = ""
        config = request.app[DTONE].config
        expected = f"{config.dtone_api_key}:{config.dtone_api_secret}".encode()
        if scheme.lower() != "basic" or not secrets.compare_digest(given.encode(), expected):
            return errors(401, 1000401, "Unauthorized")
        return await handler(request)

    return checked


@authorized
async def create(request: web.Request) -> web.Response:
    state = request.app[DTONE]
    state.counts["requests"] += 1
    try:
        answer = await _create(state, await request.read())
    except Invalid as exc:
        answer = errors(exc.status, exc.code, exc.message)
    if state.config.latency_ms:
        await asyncio.sleep(state.config.latency_ms / 1000)
    return answer


async def _create(state: DtOneState, raw: bytes) -> web.Response:
    external_id, product, msisdn, amount_minor = _parse(raw)
    state.sends[external_id] += 1
    if external_id in state.by_external_id:
        state.counts["duplicates"] += 1
        raise Invalid(400, 1007001, "Transaction external ID has already been used")
    outcome = choose(
        msisdn,
        config=state.config,
        rng=state.rng,
        errored_before=external_id in state.errored_once,
    )
    if outcome in (Outcome.ERROR, Outcome.ERROR_ONCE):
        state.errored_once.add(external_id)
        state.counts["errors_5xx"] += 1
        raise Invalid(503, 1009503, "Service unavailable, please retry later")
    if outcome is not Outcome.DECLINE and state.cost(amount_minor) > state.balance_minor():
        raise Invalid(400, 1006001, "Insufficient balance")
    tx = state.record(
        external_id=external_id,
        product=product,
        msisdn=msisdn,
        amount_minor=amount_minor,
        outcome=outcome,
    )
    if outcome is Outcome.SLOW:
        await asyncio.sleep(state.config.slow_ms / 1000)
    return web.json_response(tx.to_json("CONFIRMED"), status=201)  # async: the operator is next


def _parse(raw: bytes) -> tuple[str, Product, str, int]:
    try:
        body = loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Invalid(400, 1000400, "Bad Request: the body is not JSON") from None
    if not isinstance(body, dict):
        raise Invalid(400, 1000400, "Bad Request: the body must be a JSON object")
    external_id = body.get("external_id")
    if not isinstance(external_id, str) or not external_id.strip() or len(external_id) > 40:
        raise Invalid(400, 1000400, "Bad Request: external_id is required (1 to 40 characters)")
    if body.get("auto_confirm") is not True:
        raise Invalid(400, 1000400, "Bad Request: the sandbox confirms only with auto_confirm")
    product_id = body.get("product_id")
    product = PRODUCTS.get(product_id) if isinstance(product_id, int) else None
    if product is None:
        raise Invalid(404, 1003001, "Product is not available in your account")
    party = body.get("credit_party_identifier")
    number = party.get("mobile_number") if isinstance(party, dict) else None
    msisdn = number if isinstance(number, str) and number.startswith("+") else None
    msisdn = msisdn and operators.normalize(msisdn, operators.COUNTRY)
    if msisdn is None:
        raise Invalid(400, 1005003, "Credit party mobile number is invalid")
    if product.ranged:
        destination = body.get("destination")
        unit_ok = isinstance(destination, dict) and destination.get("unit") == "KES"
        amount = to_minor(destination.get("amount")) if isinstance(destination, dict) else None
        if body.get("calculation_mode") != "DESTINATION_AMOUNT" or not unit_ok:
            raise Invalid(400, 1003003, "Requested product unit is invalid")
    else:
        amount = product.amount_minor
    if amount is None or not product.accepts(amount):
        raise Invalid(400, 1003002, "Requested product amount is out of range")
    return external_id, product, msisdn, amount


@authorized
async def by_id(request: web.Request) -> web.Response:
    text = request.match_info["transaction_id"]
    tx = request.app[DTONE].by_id.get(int(text)) if text.isdigit() else None
    if tx is None:
        return errors(404, 1008004, "Transaction not found")
    return web.json_response(tx.to_json())


@authorized
async def listing(request: web.Request) -> web.Response:
    """By ``external_id`` (404 1008004 when there is none), else by creation date within at most
    a day (both bounds inclusive; the last 24 hours without them), paged with X- headers."""
    state, query = request.app[DTONE], request.query
    try:
        page, per_page = _paging(query)
        reference = query.get("external_id")
        if reference is not None:
            found = [tx] if (tx := state.by_external_id.get(reference)) else []
            if not found:
                raise Invalid(404, 1008004, "Transaction not found")
        else:
            found = _between(state, query.get("from_date"), query.get("to_date"))
    except Invalid as exc:
        return errors(exc.status, exc.code, exc.message)
    return _page([tx.to_json() for tx in found], page, per_page)


def _between(state: DtOneState, start_text: str | None, end_text: str | None) -> list[Transaction]:
    start = parse_date(start_text) if start_text else None
    end = parse_date(end_text) if end_text else None
    if (start_text and start is None) or (end_text and end is None):
        raise Invalid(400, 1000400, "Bad Request: from_date and to_date are date-times")
    if start and end and (end - start).total_seconds() > 86_400:
        raise Invalid(400, 1000400, "Bad Request: the window can not exceed 24 hours")
    return [
        tx
        for tx in state.ordered
        if (start is None or tx.at >= start) and (end is None or tx.at <= end)
    ]


@authorized
async def products(request: web.Request) -> web.Response:
    query = request.query
    try:
        page, per_page = _paging(query)
    except Invalid as exc:
        return errors(exc.status, exc.code, exc.message)
    kind, operator_id = query.get("type"), query.get("operator_id")
    country = query.get("country_iso_code")
    found = [
        p.to_json()
        for p in PRODUCTS.values()
        if (kind is None or p.to_json()["type"] == kind)
        and (operator_id is None or str(p.operator_id) == operator_id)
        and (country is None or country.upper() == "KEN")
    ]
    return _page(found, page, per_page)


@authorized
async def lookup(request: web.Request) -> web.Response:
    """The operators a number may belong to, ``identified`` for the one its range names."""
    e164 = operators.normalize(request.match_info["mobile_number"], operators.COUNTRY)
    if e164 is None:
        return errors(400, 1005003, "Credit party mobile number is invalid")
    found = operators.detect(e164)
    seen: dict[int, dict[str, Any]] = {}
    for product in PRODUCTS.values():
        identified = found is not None and product.carrier == found.carrier
        seen.setdefault(product.operator_id, product.operator_json() | {"identified": identified})
    return web.json_response(list(seen.values()))


@authorized
async def balances(request: web.Request) -> web.Response:
    """Available and holding (the pending transactions' cost), as DT One splits a balance."""
    state = request.app[DTONE]
    holding = sum(tx.cost_minor for tx in state.ordered if tx.klass() in PENDING)
    body = {"id": 1, "unit_type": "CURRENCY", "unit": "KES", "credit_limit": 0}
    body |= {"available": major(state.balance_minor()), "holding": major(holding)}
    return web.json_response([body])


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[DTONE].stats(request.query.get("reference")))


def _paging(query: Any) -> tuple[int, int]:
    page_text, per_page_text = query.get("page", "1"), query.get("per_page", "")
    if not page_text.isdigit() or (per_page_text and not per_page_text.isdigit()):
        raise Invalid(400, 1000400, "Bad Request: page and per_page are numbers")
    per_page = min(int(per_page_text or PER_PAGE_DEFAULT), PER_PAGE_MAX) or PER_PAGE_DEFAULT
    return max(int(page_text), 1), per_page


def _page(items: list[dict[str, Any]], page: int, per_page: int) -> web.Response:
    pages = math.ceil(len(items) / per_page)
    headers = {
        "X-Total": str(len(items)),
        "X-Total-Pages": str(pages),
        "X-Per-Page": str(per_page),
        "X-Page": str(page),
    }
    if page < pages:
        headers["X-Next-Page"] = str(page + 1)
    if page > 1:
        headers["X-Prev-Page"] = str(page - 1)
    chunk = items[(page - 1) * per_page : page * per_page]
    return web.json_response(chunk, headers=headers)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/async/transactions", create)
    app.router.add_get("/v1/transactions", listing)
    app.router.add_get("/v1/transactions/{transaction_id}", by_id)
    app.router.add_get("/v1/products", products)
    app.router.add_get("/v1/lookup/mobile-number/{mobile_number}", lookup)
    app.router.add_get("/v1/balances", balances)
    app.router.add_get("/sandbox/dtone/stats", stats)
