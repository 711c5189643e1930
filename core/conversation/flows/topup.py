"""Airtime and data bundles for a customer: number → amount or bundle → confirm with the PIN.

The confirmation is the only step that moves anything: :func:`confirm_topup` with this turn's key,
so a gateway's retry of the hop finds the same top-up. The session then ends with the reference;
the outcome reaches the retailer by Telegram or SMS (core/services/notify.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum

from msgspec import field

from core.conversation.flow import MENU, Ctx, Reprompt, Step, T, Zero, end, prompt
from core.conversation.flows.common import check_pin, money, operator, take_amount, take_number
from core.conversation.sessions import Journey
from core.conversation.types import Expects, Option, Screen
from core.errors import RepeatNeedsConfirmation
from core.models import ProductKind, Topup
from core.money import MINOR_PER_MAJOR
from core.msisdn import national
from core.services.topups import confirm_topup


class S(StrEnum):
    AIRTIME_NUMBER = "airtime.number"
    AIRTIME_AMOUNT = "airtime.amount"
    AIRTIME_CONFIRM = "airtime.confirm"
    AIRTIME_REPEAT = "airtime.repeat"
    DATA_NUMBER = "data.number"
    DATA_BUNDLE = "data.bundle"
    DATA_CONFIRM = "data.confirm"
    DATA_REPEAT = "data.repeat"


TABLE: list[list[str]] = [
    # trigger  source              destination
    [T.AIRTIME, MENU, S.AIRTIME_NUMBER],
    [T.NEXT, S.AIRTIME_NUMBER, S.AIRTIME_AMOUNT],
    [T.NEXT, S.AIRTIME_AMOUNT, S.AIRTIME_CONFIRM],
    [T.REPEAT, S.AIRTIME_CONFIRM, S.AIRTIME_REPEAT],
    [T.DATA, MENU, S.DATA_NUMBER],
    [T.NEXT, S.DATA_NUMBER, S.DATA_BUNDLE],
    [T.NEXT, S.DATA_BUNDLE, S.DATA_CONFIRM],
    [T.REPEAT, S.DATA_CONFIRM, S.DATA_REPEAT],
]


class Order(Journey, tag="top"):
    """A customer's top-up as it is asked for: airtime (an amount) or data (a bundle)."""

    msisdn: str = field(default="", name="n")  # E.164
    operator: str = field(default="", name="o")  # detected from the number
    amount_minor: int = field(default=0, name="a")  # airtime
    bundle: str = field(default="", name="b")  # data: the product's code
    seconds_ago: int = field(default=0, name="ago")  # since the same top-up, when it is a repeat


JOURNEYS: dict[str, type[Journey]] = {T.AIRTIME: Order, T.DATA: Order}


async def number(ctx: Ctx, text: str) -> str:
    msisdn, op = await take_number(ctx, text)
    topup = ctx.data(Order)
    topup.msisdn, topup.operator = msisdn, op.code
    return T.NEXT


async def _airtime_range(ctx: Ctx) -> tuple[int, int, int, str]:
    catalog = await ctx.core.catalog.get()
    code = ctx.data(Order).operator
    product = catalog.product(f"{code}:{ProductKind.AIRTIME}")
    currency = catalog.operator(code).currency
    low, high = product.min_minor or 1, product.max_minor or 10**12
    return low, high, product.step_minor or 1, currency


async def show_amount(ctx: Ctx) -> Screen:
    low, high, _step, currency = await _airtime_range(ctx)
    topup = ctx.data(Order)
    op = await operator(ctx, topup.operator)
    return Screen(
        ctx.t(
            "airtime.amount",
            operator=op.name,
            number=national(topup.msisdn),
            low=money(low, currency),
            high=money(high, currency),
        )
    )


async def amount(ctx: Ctx, text: str) -> str:
    value = take_amount(text)
    low, high, step, currency = await _airtime_range(ctx)
    if value % MINOR_PER_MAJOR and step % MINOR_PER_MAJOR == 0:  # "50.5": cents where none are
        raise Reprompt(key="error.amount_whole", currency=currency)
    if not low <= value <= high or value % step:
        raise Reprompt(
            key="error.amount_range", low=money(low, currency), high=money(high, currency)
        )
    ctx.data(Order).amount_minor = value
    return T.NEXT


async def show_confirm(ctx: Ctx) -> Screen:
    topup = ctx.data(Order)
    op = await operator(ctx, topup.operator)
    return Screen(
        ctx.t(
            "airtime.confirm",
            amount=money(topup.amount_minor, op.currency),
            number=national(topup.msisdn),
            operator=op.name,
        )
    )


async def show_bundles(ctx: Ctx) -> Screen:
    catalog = await ctx.core.catalog.get()
    topup = ctx.data(Order)
    op = catalog.operator(topup.operator)
    bundles = sorted(
        (
            p
            for p in catalog.products.values()
            if p.operator_code == op.code and p.kind != ProductKind.AIRTIME and p.active
        ),
        key=lambda p: (p.price_minor or 0, p.code),
    )
    if not bundles:
        return end(ctx.t("data.none", operator=op.name))
    options = tuple(
        Option(f"{p.name} {money(p.price_minor or 0, op.currency)}", p.code) for p in bundles
    )
    return Screen(ctx.t("data.bundles", operator=op.name, number=national(topup.msisdn)), options)


async def bundle(ctx: Ctx, code: str) -> str:
    ctx.data(Order).bundle = code
    return T.NEXT


async def show_data_confirm(ctx: Ctx) -> Screen:
    catalog = await ctx.core.catalog.get()
    topup = ctx.data(Order)
    product, op = catalog.product(topup.bundle), catalog.operator(topup.operator)
    return Screen(
        ctx.t(
            "data.confirm",
            bundle=product.name,
            price=money(product.price_minor or 0, op.currency),
            number=national(topup.msisdn),
            operator=op.name,
        )
    )


def _confirm(*, repeat: bool) -> Callable[[Ctx, str], Awaitable[str | Screen]]:
    async def answer(ctx: Ctx, text: str) -> str | Screen:
        asked = ctx.data(Order)
        try:
            # One turn in the retailer's queue for the PIN and the reservation (core/hot_rows.py):
            # a confirmation past its PIN is not queued again behind later ones.
            async with ctx.core.gates.turn(ctx.party_id):
                await check_pin(ctx, text)
                topup = await confirm_topup(
                    ctx.core,
                    ctx.queue,
                    party_id=ctx.party_id,
                    msisdn=asked.msisdn,
                    channel=ctx.turn.channel,
                    product_code=asked.bundle or None,
                    amount_minor=None if asked.bundle else asked.amount_minor,
                    client_key=ctx.turn_key(),
                    confirm_repeat=repeat,
                )
        except RepeatNeedsConfirmation as exc:
            asked.seconds_ago = int(exc.fields["seconds_ago"])
            return T.REPEAT
        return end(_accepted(ctx, topup))

    return answer


def _accepted(ctx: Ctx, topup: Topup) -> str:
    return ctx.t(
        "topup.accepted",
        amount=money(topup.amount_minor, topup.currency),
        number=national(topup.msisdn),
        ref=topup.id,
    )


async def show_repeat(ctx: Ctx) -> Screen:
    topup = ctx.data(Order)
    op = await operator(ctx, topup.operator)
    catalog = await ctx.core.catalog.get()
    amount_minor = (
        catalog.product(topup.bundle).price_minor or 0 if topup.bundle else topup.amount_minor
    )
    return Screen(
        ctx.t(
            "topup.repeat",
            amount=money(amount_minor, op.currency),
            number=national(topup.msisdn),
            seconds=topup.seconds_ago,
        )
    )


STEPS: dict[str, Step] = {
    S.AIRTIME_NUMBER: Step(prompt("airtime.number"), number, Expects.MSISDN),
    S.AIRTIME_AMOUNT: Step(show_amount, amount, Expects.AMOUNT),
    S.AIRTIME_CONFIRM: Step(show_confirm, _confirm(repeat=False), Expects.PIN, Zero.CANCEL),
    S.AIRTIME_REPEAT: Step(show_repeat, _confirm(repeat=True), Expects.PIN, Zero.CANCEL, False),
    S.DATA_NUMBER: Step(prompt("data.number"), number, Expects.MSISDN),
    S.DATA_BUNDLE: Step(show_bundles, bundle),
    S.DATA_CONFIRM: Step(show_data_confirm, _confirm(repeat=False), Expects.PIN, Zero.CANCEL),
    S.DATA_REPEAT: Step(show_repeat, _confirm(repeat=True), Expects.PIN, Zero.CANCEL, False),
}
