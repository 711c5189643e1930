"""Sandbox-only routes that make the aggregator's books disagree with ours, so every class of
reconciliation mismatch can be produced on purpose (tests, the benchmark, a demo). Never part of
the aggregator's API; no authentication, like the other ``/sandbox/*`` routes.

``POST /sandbox/tamper`` takes one edit, a JSON object:

- ``{"reference": R, "status": "SUCCESSFUL" | "FAILED" | "REFUNDED" | "PROCESSING"}``: the
  transaction's status now (a settled hang, a reversal);
- ``{"reference": R, "amount": 60}``: the amount it records (major units);
- ``{"reference": R, "cost": 60}``: what it charged the account (``balanceInfo.cost``, major
  units; the balance chain is left as it was);
- ``{"reference": R, "drop": true}``: it disappears from the report (missing at the aggregator);
- ``{"credit": 500}``: money put into the account (major units): the next transaction's
  ``oldBalance`` is that much above the last one's ``newBalance``;
- ``{"outage": true | false}``: every request to the aggregator's API (both faces, the token
  included) answered 503 until it is switched off; SMS and ``/sandbox/*`` go on;
- ``{"add": {"reference": R | null, "recipient": "+2547…", "amount": 50, "status": …,
  "at": "2026-12-03 10:00:00"}}``: a transaction we never sent (unknown to us).

``POST /sandbox/import`` takes ``{"transactions": [<add objects>]}``: many at once (the
benchmark's day), charged to nobody's balance.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from sandbox import operators
from sandbox.store import STORE, Status, Store, Transaction
from sandbox.wire import loads, major, now, parse_date, to_minor

OUTSIDE_OUTAGE = ("/sandbox/", "/version1/messaging")  # inspection and SMS


class _Bad(Exception):
    pass


@web.middleware
async def outage(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The aggregator down (``{"outage": true}``): its API answers 503, nothing is recorded."""
    if request.app[STORE].outage and not request.path.startswith(OUTSIDE_OUTAGE):
        return web.json_response(
            {"errorCode": "SERVICE_UNAVAILABLE", "message": "outage"}, status=503
        )
    return await handler(request)


async def tamper(request: web.Request) -> web.Response:
    store = request.app[STORE]
    try:
        edit = loads(await request.read())
        if not isinstance(edit, dict):
            raise _Bad("an edit is a JSON object")
        if "outage" in edit:
            if not isinstance(edit["outage"], bool):
                raise _Bad("outage: true or false")
            store.outage = edit["outage"]
            return web.json_response({"outage": store.outage})
        if "credit" in edit:
            return _credit(store, edit["credit"])
        tx = _add(store, edit["add"]) if "add" in edit else _edit(store, edit)
    except (_Bad, ValueError, UnicodeDecodeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(tx.to_json() if tx else {"dropped": edit.get("reference")})


async def bulk_import(request: web.Request) -> web.Response:
    store = request.app[STORE]
    try:
        body = loads(await request.read())
        items = body.get("transactions") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise _Bad("expected {transactions: [...]}")
        added = [_new(store, item) for item in items]
    except (_Bad, ValueError, UnicodeDecodeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    for tx in added:
        _index(store, tx)
    store.ordered.sort(key=lambda t: (t.at, t.transaction_id))
    return web.json_response({"imported": len(added)})


def _credit(store: Store, amount: Any) -> web.Response:
    credit = to_minor(amount)
    if credit is None or credit <= 0:
        raise _Bad("credit: a positive number in major units")
    store.balance_minor += credit
    return web.json_response({"balance": major(store.balance_minor)})


def _edit(store: Store, edit: dict[str, Any]) -> Transaction | None:
    tx = store.by_reference.get(str(edit.get("reference")))
    if tx is None:
        raise _Bad(f"no transaction with reference {edit.get('reference')!r}")
    if edit.get("drop"):
        del store.by_reference[tx.reference]
        del store.by_id[tx.transaction_id]
        store.ordered.remove(tx)
        return None
    if "amount" in edit:
        amount = to_minor(edit["amount"])
        if amount is None or amount <= 0:
            raise _Bad("amount: a positive number in major units")
        tx.requested_minor = amount
    if "cost" in edit:
        cost = to_minor(edit["cost"])
        if cost is None or cost < 0:
            raise _Bad("cost: a number in major units, 0 or more")
        tx.cost_minor = cost
    if "status" in edit:
        status = Status(str(edit["status"]))
        store.statuses[tx.status] -= 1
        store.statuses[status] += 1
        tx.status = status
        if status is Status.SUCCESSFUL:
            tx.operator_transaction_id = f"SBX{tx.transaction_id:010d}"
    return tx


def _add(store: Store, item: Any) -> Transaction:
    tx = _new(store, item)
    _index(store, tx)
    store.ordered.sort(key=lambda t: (t.at, t.transaction_id))
    return tx


def _new(store: Store, item: Any) -> Transaction:
    if not isinstance(item, dict):
        raise _Bad("a transaction is a JSON object")
    recipient = operators.normalize(str(item.get("recipient", "")), operators.COUNTRY)
    operator = operators.detect(recipient) if recipient else None
    amount = to_minor(item.get("amount"))
    if recipient is None or operator is None or amount is None or amount <= 0:
        raise _Bad("a transaction needs a KE recipient and a positive amount")
    at = parse_date(str(item["at"])) if item.get("at") else now()
    if at is None:
        raise _Bad("at: YYYY-MM-DD HH:MM:SS (UTC)")
    reference = item.get("reference")
    status = Status(str(item.get("status", Status.SUCCESSFUL)))
    tx = Transaction(
        transaction_id=next(store._ids),  # noqa: SLF001 - the store's own id sequence
        reference=str(reference) if reference is not None else "",
        status=status,
        operator=operator,
        recipient=recipient,
        sender=None,
        requested_minor=amount,
        cost_minor=store.cost(amount),
        at=at if isinstance(at, datetime) else now(),
        balance_before_minor=store.balance_minor,
        balance_after_minor=store.balance_minor,
    )
    if status is Status.SUCCESSFUL:
        tx.operator_transaction_id = f"SBX{tx.transaction_id:010d}"
    return tx


def _index(store: Store, tx: Transaction) -> None:
    if tx.reference:
        store.by_reference[tx.reference] = tx
    store.by_id[tx.transaction_id] = tx
    store.ordered.append(tx)
    store.statuses[tx.status] += 1
