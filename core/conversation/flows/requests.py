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

from msgspec import field

from core.conversation.flow import MENU, Ctx, Reprompt, Step, T, Zero, end
from core.conversation.flows.common import check_pin, money, operator
from core.conversation.sessions import Journey
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


class Decision(Journey, tag="req"):
    """One request as the list showed it, and what the distributor chose to do with it."""

    request_id: int = field(default=0, name="q")
    created_s: int = field(default=0, name="qt")  # when it was made (Unix seconds): its age
    buyer_id: int = field(default=0, name="rid")
    buyer_name: str = field(default="", name="rn")  # cut to 24 characters
    operator: str = field(default="", name="o")
    face_minor: int = field(default=0, name="a")
    act: str = field(default="", name="act")  # T.APPROVE or T.REFUSE


JOURNEYS: dict[str, type[Journey]] = {T.REQUESTS: Decision}


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
    decision = ctx.data(Decision)
    decision.request_id, decision.created_s = row.id, int(row.created_at.timestamp())
    decision.buyer_id, decision.buyer_name = row.buyer_id, row.buyer_name[:24]
    decision.operator, decision.face_minor = row.operator_code, row.face_minor
    return T.NEXT


async def show_one(ctx: Ctx) -> Screen:
    asked = ctx.data(Decision)
    quote = await stock.quote(
        ctx.core, buyer_id=asked.buyer_id, operator_code=asked.operator, face_minor=asked.face_minor
    )
    op = await operator(ctx, asked.operator)
    waited = utcnow().timestamp() - asked.created_s
    text = ctx.t(
        "requests.detail",
        request=asked.request_id,
        age=age(timedelta(seconds=waited)),
        name=asked.buyer_name,
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
    ctx.data(Decision).act = value
    return value


async def show_confirm(ctx: Ctx) -> Screen:
    asked = ctx.data(Decision)
    op = await operator(ctx, asked.operator)
    return Screen(
        ctx.t(
            f"requests.confirm_{asked.act}",
            request=asked.request_id,
            name=asked.buyer_name,
            amount=money(asked.face_minor, op.currency),
            operator=op.name,
        )
    )


async def decide(ctx: Ctx, text: str) -> Screen:
    await check_pin(ctx, text)
    asked = ctx.data(Decision)
    actor = Actor.party(ctx.party_id, ctx.turn.channel)
    fields = {"request": asked.request_id, "name": asked.buyer_name}
    if asked.act == T.APPROVE:
        decision = await requests.approve(
            ctx.core,
            request_id=asked.request_id,
            seller_id=ctx.party_id,
            actor=actor,
            queue=ctx.queue,
        )
    else:
        decision = await requests.refuse(
            ctx.core,
            request_id=asked.request_id,
            seller_id=ctx.party_id,
            note=None,
            actor=actor,
            queue=ctx.queue,
        )
    if not decision.decided_now:
        return end(ctx.t("requests.decided", **fields))
    if decision.state == RequestState.REFUSED:
        return end(ctx.t("requests.refused", **fields))
    op = await operator(ctx, asked.operator)
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
