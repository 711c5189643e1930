"""A distributor on USSD: sell stock to one of its retailers, and see who is low on stock.

The retailer is found by number and must be the distributor's own (said at once, and checked again
by :func:`core.services.stock.sell`, which is what enforces it).
"""

from __future__ import annotations

from enum import StrEnum

from msgspec import field

from core.conversation.flow import MENU, Ctx, Reprompt, Step, T, Zero, end, prompt
from core.conversation.flows.common import (
    Chosen,
    check_pin,
    money,
    operator,
    operator_choice,
    take_amount,
)
from core.conversation.sessions import Journey
from core.conversation.types import Expects, Option, Screen
from core.errors import InvalidMsisdn, NotFound
from core.msisdn import national
from core.services import stock
from core.services.audit import Actor
from core.services.parties import get_party


class S(StrEnum):
    SELL_NUMBER = "sell.number"
    SELL_OPERATOR = "sell.operator"
    SELL_AMOUNT = "sell.amount"
    SELL_CONFIRM = "sell.confirm"
    LOW_STOCK = "low_stock.list"


TABLE: list[list[str]] = [
    # trigger  source  destination
    [T.SELL, MENU, S.SELL_NUMBER],
    [T.NEXT, S.SELL_NUMBER, S.SELL_OPERATOR],
    [T.NEXT, S.SELL_OPERATOR, S.SELL_AMOUNT],
    [T.NEXT, S.SELL_AMOUNT, S.SELL_CONFIRM],
    [T.LOW_STOCK, MENU, S.LOW_STOCK],
]


class Sale(Chosen, tag="sell"):
    """Stock sold to one of the distributor's retailers: whom (as shown), which operator, how
    much face value. The retailers journey extends it: selling from a retailer's page."""

    retailer_id: int = field(default=0, name="rid")
    retailer_name: str = field(default="", name="rn")  # cut to 24 characters
    retailer_msisdn: str = field(default="", name="rm")
    face_minor: int = field(default=0, name="a")


JOURNEYS: dict[str, type[Journey]] = {T.SELL: Sale}
NAME_CHARS = 24  # of a retailer's name kept for the screens


async def retailer(ctx: Ctx, text: str) -> str:
    try:
        async with ctx.core.sessions() as session:
            party = await get_party(session, text, country=ctx.core.settings.country)
    except (NotFound, InvalidMsisdn):
        party = None
    if party is None or party.parent_id != ctx.party_id:
        raise Reprompt(key="sell.not_yours")
    sale = ctx.data(Sale)
    sale.retailer_id, sale.retailer_msisdn = party.id or 0, party.msisdn
    sale.retailer_name = party.name[:NAME_CHARS]
    return T.NEXT


async def amount(ctx: Ctx, text: str) -> str:
    ctx.data(Sale).face_minor = take_amount(text)
    return T.NEXT


async def show_confirm(ctx: Ctx) -> Screen:
    sale = ctx.data(Sale)
    quote = await stock.quote(
        ctx.core,
        buyer_id=sale.retailer_id,
        operator_code=sale.operator,
        face_minor=sale.face_minor,
    )
    op = await operator(ctx, sale.operator)
    return Screen(
        ctx.t(
            "sell.confirm",
            amount=money(quote.face_minor, op.currency),
            operator=op.name,
            name=sale.retailer_name,
            number=national(sale.retailer_msisdn),
            price=money(quote.price_minor, op.currency),
        )
    )


async def sell(ctx: Ctx, text: str) -> Screen:
    await check_pin(ctx, text)
    sale = ctx.data(Sale)
    receipt = await stock.sell(
        ctx.core,
        actor=Actor.party(ctx.party_id, ctx.turn.channel),
        seller_ref=ctx.party_id,
        buyer_ref=sale.retailer_id,
        operator_code=sale.operator,
        face_minor=sale.face_minor,
        key=ctx.turn_key(),
        queue=ctx.queue,  # a low-stock alert goes at once
    )
    op = await operator(ctx, sale.operator)
    return end(
        ctx.t(
            "sell.done",
            amount=money(receipt.face_minor, op.currency),
            operator=op.name,
            name=sale.retailer_name,
            price=money(receipt.price_minor, op.currency),
            ref=receipt.reference,
        )
    )


async def show_low(ctx: Ctx) -> Screen:
    rows = await stock.low_stock(
        ctx.core,
        distributor_id=ctx.party_id,
        threshold_minor=ctx.core.settings.low_stock_minor,
    )
    if not rows:
        return end(ctx.t("low_stock.none"))
    catalog = await ctx.core.catalog.get()
    options = []
    for row in rows:
        op = catalog.operators.get(row.operator_code)
        name, currency = (op.name, op.currency) if op else (row.operator_code, "")
        label = f"{row.name[:16]} {name} {money(row.available_minor, currency)}"
        options.append(Option(label, f"{row.party_id}"))
    return Screen(ctx.t("low_stock.title"), tuple(options))


async def low_detail(ctx: Ctx, party_id: str) -> Screen:
    position = await stock.balance(ctx.core, ref=int(party_id))
    party = position.party
    if party.parent_id != ctx.party_id:  # pragma: no cover - the list holds only our retailers
        raise Reprompt(key="sell.not_yours")
    catalog = await ctx.core.catalog.get()
    lines = [f"{party.name} {national(party.msisdn)}"]
    for code, amounts in position.stock.items():
        op = catalog.operators.get(code)
        name, currency = (op.name, op.currency) if op else (code, "")
        lines.append(f"{name}: {money(amounts['available'], currency)}")
    return end("\n".join(lines))


STEPS: dict[str, Step] = {
    S.SELL_NUMBER: Step(prompt("sell.number"), retailer, Expects.MSISDN),
    S.SELL_OPERATOR: operator_choice(
        "sell.operator", name=lambda ctx: ctx.data(Sale).retailer_name
    ),
    S.SELL_AMOUNT: Step(prompt("sell.amount"), amount, Expects.AMOUNT),
    S.SELL_CONFIRM: Step(show_confirm, sell, Expects.PIN, Zero.CANCEL),
    S.LOW_STOCK: Step(show_low, low_detail),
}
