"""A distributor's stock requests: retailers' purchases that need its credit, awaiting its decision.

The list, one request (the price after discount and how it would be paid, from ``stock.quote``),
then approve or refuse with the PIN. What the request is and who may decide it is checked again by
:mod:`core.services.requests` (only the buyer's own seller, at most once), not by what was shown.

No step here is resumable: a request shown before a drop may have been decided since, so a redial
starts from the menu and the list is read again.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from core.conversation.flow import MENU, Ctx, Reprompt, Step, T, Zero, end
from core.conversation.flows.common import check_pin, money, operator
from core.conversation.types import Expects, Option, Screen
from core.models import RequestState
from core.models.types import utcnow
from core.services import requests, stock
from core.services.audit import Actor

NAME_CHARS = 16  # of the retailer's name in a list line


class S(StrEnum):
    LIST = "requests.list"
    ONE = "requests.one"
    CONFIRM = "requests.confirm"  # approve or refuse, with the distributor's PIN


TABLE: list[list[str]] = [
    # trigger  source  destination
    [T.REQUESTS, MENU, S.LIST],
    [T.NEXT, S.LIST, S.ONE],
    [T.APPROVE, S.ONE, S.CONFIRM],
    [T.REFUSE, S.ONE, S.CONFIRM],
]


def age(elapsed: timedelta) -> str:
    """``5m``, ``3h``, ``2d``: how long a request has waited, in a few characters."""
    minutes = max(int(elapsed.total_seconds() // 60), 0)
    if minutes < 60:
        return f"{minutes}m"
    if minutes < 48 * 60:
        return f"{minutes // 60}h"
    return f"{minutes // (24 * 60)}d"


async def show_list(ctx: Ctx) -> Screen:
    rows = await requests.pending_for(ctx.core, seller_id=ctx.party_id)
    if not rows:
        return end(ctx.t("requests.none"))
    catalog = await ctx.core.catalog.get()
    now = utcnow()
    options = []
    for row in rows:
        op = catalog.operators.get(row.operator_code)
        name, currency = (op.name, op.currency) if op else (row.operator_code, "")
        amount = money(row.face_minor, currency)
        label = f"{row.buyer_name[:NAME_CHARS]} {name} {amount} {age(now - row.created_at)}"
        options.append(Option(label, str(row.id)))
    return Screen(ctx.t("requests.title"), tuple(options))


async def pick(ctx: Ctx, request_id: str) -> str:
    rows = await requests.pending_for(ctx.core, seller_id=ctx.party_id)
    row = next((r for r in rows if r.id == int(request_id)), None)
    if row is None:  # decided since the list was shown
        raise Reprompt(key="requests.gone")
    ctx.data.update(
        q=row.id,
        qt=int(row.created_at.timestamp()),
        rid=row.buyer_id,
        rn=row.buyer_name[:24],
        o=row.operator_code,
        a=row.face_minor,
    )
    return T.NEXT


async def show_one(ctx: Ctx) -> Screen:
    data = ctx.data
    quote = await stock.quote(
        ctx.core, buyer_id=data["rid"], operator_code=data["o"], face_minor=data["a"]
    )
    op = await operator(ctx, data["o"])
    waited = utcnow().timestamp() - int(data.get("qt", 0))
    text = ctx.t(
        "requests.detail",
        request=data["q"],
        age=age(timedelta(seconds=waited)),
        name=data["rn"],
        amount=money(quote.face_minor, op.currency),
        operator=op.name,
        price=money(quote.price_minor, op.currency),
        cash=money(quote.cash_minor, op.currency),
        credit=money(quote.credit_minor, op.currency),
    )
    options = (
        Option(ctx.t("requests.approve"), T.APPROVE),
        Option(ctx.t("requests.refuse"), T.REFUSE),
    )
    return Screen(text, options)


async def act(ctx: Ctx, value: str) -> str:
    ctx.data["act"] = value
    return value


async def show_confirm(ctx: Ctx) -> Screen:
    data = ctx.data
    op = await operator(ctx, data["o"])
    return Screen(
        ctx.t(
            f"requests.confirm_{data['act']}",
            request=data["q"],
            name=data["rn"],
            amount=money(data["a"], op.currency),
            operator=op.name,
        )
    )


async def decide(ctx: Ctx, text: str) -> Screen:
    await check_pin(ctx, text)
    data = ctx.data
    actor = Actor.party(ctx.party_id, ctx.turn.channel)
    fields = {"request": data["q"], "name": data["rn"]}
    if data["act"] == T.APPROVE:
        decision = await requests.approve(
            ctx.core, request_id=data["q"], seller_id=ctx.party_id, actor=actor, queue=ctx.queue
        )
    else:
        decision = await requests.refuse(
            ctx.core,
            request_id=data["q"],
            seller_id=ctx.party_id,
            note=None,
            actor=actor,
            queue=ctx.queue,
        )
    if not decision.decided_now:
        return end(ctx.t("requests.decided", **fields))
    if decision.state == RequestState.REFUSED:
        return end(ctx.t("requests.refused", **fields))
    op = await operator(ctx, data["o"])
    receipt = decision.receipt
    if decision.state == RequestState.FAILED or receipt is None:
        why = ctx.t(decision.why or "requests.why_other")
        return end(ctx.t("requests.failed", **fields, why=why))
    return end(
        ctx.t(
            "requests.approved",
            **fields,
            amount=money(receipt.face_minor, op.currency),
            operator=op.name,
            price=money(receipt.price_minor, op.currency),
            credit=money(receipt.credit_minor, op.currency),
        )
    )


STEPS: dict[str, Step] = {
    S.LIST: Step(show_list, pick, resumable=False),
    S.ONE: Step(show_one, act, resumable=False),
    S.CONFIRM: Step(show_confirm, decide, Expects.PIN, Zero.CANCEL, resumable=False),
}
