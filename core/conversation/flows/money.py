"""The party's own money: balance, mini statement, and buying stock from its distributor.

Balance and statement ask for the PIN first (a shared phone shows nothing without it). Buying
shows the price after the distributor's discount and how it will be paid (cash first, then
credit) before the PIN; what cash plus credit cannot pay is refused. What cash covers is bought at
once; a purchase that needs credit becomes a stock request the distributor approves or refuses
(:mod:`core.services.requests`), and the retailer hears of the decision by SMS or Telegram.
"""

from __future__ import annotations

from enum import StrEnum

from msgspec import field

from core.catalog_snapshot import Catalog
from core.conversation.flow import MENU, Ctx, Reprompt, Step, T, Zero, end, prompt
from core.conversation.flows.common import (
    Chosen,
    check_pin,
    local,
    money,
    operator,
    operator_choice,
    take_amount,
)
from core.conversation.sessions import Journey
from core.conversation.types import Expects, Screen
from core.errors import InsufficientFunds
from core.services import requests, stock
from core.services.audit import Actor
from core.services.statement import Movement, recent

STATEMENT_LINES = 5


class S(StrEnum):
    BALANCE_PIN = "balance.pin"
    STATEMENT_PIN = "statement.pin"
    BUY_OPERATOR = "buy.operator"
    BUY_AMOUNT = "buy.amount"
    BUY_CONFIRM = "buy.confirm"


BALANCE_TABLE: list[list[str]] = [
    # trigger  source  destination
    [T.BALANCE, MENU, S.BALANCE_PIN],
    [T.STATEMENT, MENU, S.STATEMENT_PIN],
]
BUY_TABLE: list[list[str]] = [
    [T.BUY, MENU, S.BUY_OPERATOR],
    [T.NEXT, S.BUY_OPERATOR, S.BUY_AMOUNT],
    [T.NEXT, S.BUY_AMOUNT, S.BUY_CONFIRM],
]


class Buy(Chosen, tag="buy"):
    """Stock bought from the party's distributor: the operator (chosen), and its face value."""

    face_minor: int = field(default=0, name="a")


JOURNEYS: dict[str, type[Journey]] = {T.BUY: Buy}


async def balance(ctx: Ctx, text: str) -> Screen:
    await check_pin(ctx, text)
    position = await stock.balance(ctx.core, ref=ctx.party_id)
    catalog = await ctx.core.catalog.get()
    lines = []
    for code, amounts in position.stock.items():
        op = catalog.operators.get(code)
        name, currency = (op.name, op.currency) if op else (code, "")
        lines.append(f"{name}: {money(amounts['available'], currency)}")
    for currency, amounts in position.cash.items():
        lines.append(ctx.t("balance.cash", cash=money(amounts["cash"], currency)))
        if amounts["credit_limit"]:
            lines.append(
                ctx.t(
                    "balance.credit",
                    available=money(amounts["credit_available"], currency),
                    limit=money(amounts["credit_limit"], currency),
                )
            )
    return end("\n".join([ctx.t("balance.title"), *(lines or [ctx.t("balance.empty")])]))


async def statement(ctx: Ctx, text: str) -> Screen:
    await check_pin(ctx, text)
    catalog = await ctx.core.catalog.get()
    lines = [ctx.t("statement.title")]
    for move in await recent(ctx.core, party_id=ctx.party_id, limit=STATEMENT_LINES):
        lines.append(_statement_line(ctx, move, catalog))
    if len(lines) == 1:
        lines.append(ctx.t("statement.empty"))
    return end("\n".join(lines))


def _statement_line(ctx: Ctx, move: Movement, catalog: Catalog) -> str:
    """``01/06 -KES 487.50 paid``, ``01/06 +KES 500 Airtel stock``: the local day, the signed
    amount as money reads, the operator of stock, and what it was (money in is "received")."""
    family, _, code = move.asset.partition(":")
    if family == "AIRTIME":
        op = catalog.operators.get(code)
        currency, what = (op.currency, f" {op.name}") if op else ("", f" {code}")
    else:
        currency, what = code, ""
    sign = "+" if move.amount_minor > 0 else "-"
    kind = move.kind if move.kind in _KINDS else "other"
    if move.amount_minor > 0 and kind in _RECEIVED:
        kind += "_in"
    return (
        f"{local(ctx, move.at):%d/%m} {sign}{money(abs(move.amount_minor), currency)}{what} "
        + ctx.t(f"statement.{kind}")
    )


_KINDS = frozenset(
    {"reserve", "release", "sale", "payment", "credit_payment", "deposit", "repayment", "clawback"}
)
_RECEIVED = frozenset({"payment", "credit_payment"})  # the seller's side says so


async def show_buy_amount(ctx: Ctx) -> Screen:
    return Screen(ctx.t("buy.amount", operator=(await operator(ctx, ctx.data(Buy).operator)).name))


async def buy_amount(ctx: Ctx, text: str) -> str:
    face, buy = take_amount(text), ctx.data(Buy)
    quote = await stock.quote(
        ctx.core, buyer_id=ctx.party_id, operator_code=buy.operator, face_minor=face
    )
    if quote.price_minor > quote.payable_minor:
        raise Reprompt(
            key="buy.too_much",
            price=money(quote.price_minor, quote.currency),
            payable=money(quote.payable_minor, quote.currency),
        )
    buy.face_minor = face
    return T.NEXT


async def show_buy_confirm(ctx: Ctx) -> Screen:
    quote = await _quote(ctx)
    op = await operator(ctx, ctx.data(Buy).operator)
    return Screen(
        ctx.t(
            "requests.buy_confirm" if quote.credit_minor else "buy.confirm",
            amount=money(quote.face_minor, op.currency),
            operator=op.name,
            price=money(quote.price_minor, op.currency),
            cash=money(quote.cash_minor, op.currency),
            credit=money(quote.credit_minor, op.currency),
        )
    )


async def _quote(ctx: Ctx) -> stock.Quote:
    asked = ctx.data(Buy)
    return await stock.quote(
        ctx.core, buyer_id=ctx.party_id, operator_code=asked.operator, face_minor=asked.face_minor
    )


async def buy(ctx: Ctx, text: str) -> Screen:
    await check_pin(ctx, text)
    actor, asked = Actor.party(ctx.party_id, ctx.turn.channel), ctx.data(Buy)
    quote = await _quote(ctx)
    if quote.credit_minor:
        return await _request(ctx, actor)
    try:
        receipt = await stock.sell(
            ctx.core,
            actor=actor,
            seller_ref=quote.seller.id or 0,
            buyer_ref=ctx.party_id,
            operator_code=asked.operator,
            face_minor=asked.face_minor,
            key=ctx.turn_key(),
            queue=ctx.queue,
            cash_only=True,
        )
    except InsufficientFunds:  # cash was spent since the quote: the credit part needs approval
        return await _request(ctx, actor)
    op = await operator(ctx, asked.operator)
    return end(
        ctx.t(
            "buy.done",
            amount=money(receipt.face_minor, op.currency),
            operator=op.name,
            price=money(receipt.price_minor, op.currency),
            ref=receipt.reference,
        )
    )


async def _request(ctx: Ctx, actor: Actor) -> Screen:
    asked = ctx.data(Buy)
    made = await requests.create(
        ctx.core,
        buyer_id=ctx.party_id,
        operator_code=asked.operator,
        face_minor=asked.face_minor,
        actor=actor,
        queue=ctx.queue,
    )
    return end(ctx.t("requests.sent", request=made.request.id, seller=made.seller.name[:30]))


STEPS: dict[str, Step] = {
    S.BALANCE_PIN: Step(prompt("balance.pin"), balance, Expects.PIN),
    S.STATEMENT_PIN: Step(prompt("statement.pin"), statement, Expects.PIN),
    S.BUY_OPERATOR: operator_choice("buy.operator"),
    S.BUY_AMOUNT: Step(show_buy_amount, buy_amount, Expects.AMOUNT),
    S.BUY_CONFIRM: Step(show_buy_confirm, buy, Expects.PIN, Zero.CANCEL),
}
