"""``POST /topups``, its status and the transactions report, in Reloadly's shapes.

Invariant: a customIdentifier gets at most one transaction, and a repeat is answered 200 with that
transaction as it stands now (counted as a duplicate). The lookup and the insert have no ``await``
between them, so concurrent repeats cannot both pass. Kept lean: the benchmark drives this route
at hundreds of requests a second.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from sandbox import operators
from sandbox.auth import authorized
from sandbox.operators import Operator
from sandbox.rules import Outcome, choose
from sandbox.store import STORE, Status, Store, Transaction
from sandbox.wire import error, loads, parse_date, to_minor

PAGE_SIZE_DEFAULT = 20
PAGE_SIZE_MAX = 200


class Invalid(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Order:
    reference: str
    operator: Operator
    recipient: str  # E.164
    sender: str | None
    amount_minor: int


@authorized
async def send(request: web.Request) -> web.Response:
    store = request.app[STORE]
    store.counts["requests"] += 1
    try:
        answer = await _answer(store, await request.read())
    except Invalid as exc:
        answer = error(400, exc.code, exc.message, request.path)
    if store.config.latency_ms:
        await asyncio.sleep(store.config.latency_ms / 1000)
    return answer


async def _answer(store: Store, raw: bytes) -> web.Response:
    order = _parse(raw)
    store.sends[order.reference] += 1
    tx = store.by_reference.get(order.reference)
    if tx is not None:
        store.counts["duplicates"] += 1
        return web.json_response(tx.to_json())
    config = store.config
    outcome = choose(
        order.recipient,
        config=config,
        rng=store.rng,
        errored_before=order.reference in store.errored_once,
    )
    if outcome in (Outcome.ERROR, Outcome.ERROR_ONCE):
        store.errored_once.add(order.reference)
        store.counts["errors_5xx"] += 1
        return error(503, "SERVICE_UNAVAILABLE", "Service temporarily unavailable", "/topups")
    if outcome is not Outcome.DECLINE and store.cost(order.amount_minor) > store.balance_minor:
        raise Invalid("INSUFFICIENT_BALANCE", "Your account balance is too low for this top-up")
    tx = store.record(
        reference=order.reference,
        operator=order.operator,
        recipient=order.recipient,
        sender=order.sender,
        amount_minor=order.amount_minor,
        status=_FIRST_STATUS[outcome],
    )
    if outcome is Outcome.DECLINE:
        raise Invalid(
            "TRANSACTION_CANNOT_BE_PROCESSED_AT_THE_MOMENT",
            "The operator declined the top-up; try again later",
        )
    if outcome in (Outcome.HANG_THEN_SUCCEED, Outcome.HANG_THEN_FAIL):
        final = Status.SUCCESSFUL if outcome is Outcome.HANG_THEN_SUCCEED else Status.REFUNDED
        store.settle_later(tx, final)
        await asyncio.sleep(config.hang_s)
    elif outcome is Outcome.SLOW:
        await asyncio.sleep(config.slow_ms / 1000)
    return web.json_response(tx.to_json())


_FIRST_STATUS = {
    Outcome.SUCCEED: Status.SUCCESSFUL,
    Outcome.SLOW: Status.SUCCESSFUL,
    Outcome.DECLINE: Status.FAILED,
    Outcome.HANG_THEN_SUCCEED: Status.PROCESSING,
    Outcome.HANG_THEN_FAIL: Status.PROCESSING,
}


def _parse(raw: bytes) -> Order:
    try:
        body = loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Invalid("INVALID_REQUEST_BODY", "The body is not JSON") from None
    if not isinstance(body, dict):
        raise Invalid("INVALID_REQUEST_BODY", "The body must be a JSON object")
    reference = body.get("customIdentifier")
    if not isinstance(reference, str) or not reference.strip():
        raise Invalid("INVALID_CUSTOM_IDENTIFIER", "customIdentifier is required")
    operator = operators.OPERATORS.get(_int(body.get("operatorId")))
    if operator is None:
        raise Invalid("OPERATOR_UNAVAILABLE_OR_CURRENTLY_INACTIVE", "Unknown operatorId")
    amount_minor = to_minor(body.get("amount"))
    if amount_minor is None or amount_minor <= 0:
        raise Invalid("INVALID_AMOUNT", "amount must be a positive number with at most 2 decimals")
    if not operator.accepts(amount_minor):
        raise Invalid("INVALID_AMOUNT_FOR_OPERATOR", f"amount is not valid for {operator.name}")
    recipient = _phone(body.get("recipientPhone"), "INVALID_RECIPIENT_PHONE")
    if recipient is None:
        raise Invalid("INVALID_RECIPIENT_PHONE", "recipientPhone is required")
    sender = _phone(body.get("senderPhone"), "INVALID_SENDER_PHONE")
    return Order(reference, operator, recipient, sender, amount_minor)


def _int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return -1


def _phone(value: object, code: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Invalid(code, "a phone is {countryCode, number}")
    country, number = value.get("countryCode"), value.get("number")
    if not isinstance(country, str) or country.upper() != operators.COUNTRY:
        raise Invalid("COUNTRY_NOT_SUPPORTED", "The sandbox serves KE numbers only")
    e164 = operators.normalize(number, operators.COUNTRY) if isinstance(number, str) else None
    if e164 is None:
        raise Invalid(code, f"{number!r} is not a valid KE phone number")
    return e164


@authorized
async def status(request: web.Request) -> web.Response:
    tx = request.app[STORE].by_id.get(_int(request.match_info["transaction_id"]))
    if tx is None:
        return error(404, "TRANSACTION_NOT_FOUND", "No such transaction", request.path)
    return web.json_response(
        {"code": None, "message": None, "status": tx.status.value, "transaction": tx.to_json()}
    )


@authorized
async def report(request: web.Request) -> web.Response:
    """Paged; ``page`` is 1-based, ``number`` in the answer 0-based (a Spring page, as Reloadly)."""
    store = request.app[STORE]
    query = request.query
    try:
        page = _bounded(query.get("page"), default=1, low=1, high=1_000_000)
        size = _bounded(query.get("size"), default=PAGE_SIZE_DEFAULT, low=1, high=PAGE_SIZE_MAX)
        found = _matching(store, query)
    except Invalid as exc:
        return error(400, exc.code, exc.message, request.path)
    chunk = found[(page - 1) * size : page * size]
    total_pages = math.ceil(len(found) / size)
    body: dict[str, Any] = {
        "content": [tx.to_json() for tx in chunk],
        "totalElements": len(found),
        "totalPages": total_pages,
        "number": page - 1,
        "size": size,
        "numberOfElements": len(chunk),
        "first": page == 1,
        "last": page >= total_pages,
        "empty": not chunk,
    }
    return web.json_response(body)


def _matching(store: Store, query: MultiMapping[str]) -> list[Transaction]:
    start = _date(query.get("startDate"))
    end = _date(query.get("endDate"))
    reference = query.get("customIdentifier")
    if reference is None:
        return store.between(start, end)
    tx = store.by_reference.get(reference)
    if tx is None or (start and tx.at < start) or (end and tx.at > end):
        return []
    return [tx]


def _date(text: str | None) -> datetime | None:
    if text is None:
        return None
    parsed = parse_date(text)
    if parsed is None:
        raise Invalid("INVALID_DATE", f"{text!r} is not YYYY-MM-DD HH:MM:SS")
    return parsed


def _bounded(text: str | None, *, default: int, low: int, high: int) -> int:
    if text is None:
        return default
    if not text.isdigit():
        raise Invalid("INVALID_PAGE", f"{text!r} is not a page number or size")
    return min(max(int(text), low), high)
