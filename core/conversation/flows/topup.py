"""Airtime and data bundles for a customer: number → amount or bundle → confirm with the PIN.

The confirmation is the only step that moves anything: :func:`confirm_topup` with this turn's key,
so a gateway's retry of the hop finds the same top-up. The session then ends with the reference;
the outcome reaches the retailer by Telegram or SMS (core/services/notify.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum

from core.conversation.flow import MENU, Ctx, Reprompt, Step, T, Zero, end, prompt
from core.conversation.flows.common import check_pin, money, operator, take_amount, take_number
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


async def number(ctx: Ctx, text: str) -> str:
    msisdn, op = await take_number(ctx, text)
    for earlier in ("a", "b", "ago"):  # from another journey of this session
        ctx.data.pop(earlier, None)
    ctx.data.update(n=msisdn, o=op.code)
    return T.NEXT


async def _airtime_range(ctx: Ctx) -> tuple[int, int, int, str]:
    catalog = await ctx.core.catalog.get()
    product = catalog.product(f"{ctx.data['o']}:{ProductKind.AIRTIME}")
    currency = catalog.operator(ctx.data["o"]).currency
    low, high = product.min_minor or 1, product.max_minor or 10**12
    return low, high, product.step_minor or 1, currency


async def show_amount(ctx: Ctx) -> Screen:
    low, high, _step, currency = await _airtime_range(ctx)
    op = await operator(ctx, ctx.data["o"])
    return Screen(
        ctx.t(
            "airtime.amount",
            operator=op.name,
            number=national(ctx.data["n"]),
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
    ctx.data["a"] = value
    return T.NEXT


async def show_confirm(ctx: Ctx) -> Screen:
    op = await operator(ctx, ctx.data["o"])
    return Screen(
        ctx.t(
            "airtime.confirm",
            amount=money(ctx.data["a"], op.currency),
            number=national(ctx.data["n"]),
            operator=op.name,
        )
    )


async def show_bundles(ctx: Ctx) -> Screen:
    catalog = await ctx.core.catalog.get()
    op = catalog.operator(ctx.data["o"])
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
    return Screen(ctx.t("data.bundles", operator=op.name, number=national(ctx.data["n"])), options)


async def bundle(ctx: Ctx, code: str) -> str:
    ctx.data["b"] = code
    return T.NEXT


async def show_data_confirm(ctx: Ctx) -> Screen:
    catalog = await ctx.core.catalog.get()
    product, op = catalog.product(ctx.data["b"]), catalog.operator(ctx.data["o"])
    return Screen(
        ctx.t(
            "data.confirm",
            bundle=product.name,
            price=money(product.price_minor or 0, op.currency),
            number=national(ctx.data["n"]),
            operator=op.name,
        )
    )


def _confirm(*, repeat: bool) -> Callable[[Ctx, str], Awaitable[str | Screen]]:
    async def answer(ctx: Ctx, text: str) -> str | Screen:
        await check_pin(ctx, text)
        data = ctx.data
        try:
            topup = await confirm_topup(
                ctx.core,
                ctx.queue,
                party_id=ctx.party_id,
                msisdn=data["n"],
                channel=ctx.turn.channel,
                product_code=data.get("b"),
                amount_minor=None if "b" in data else data["a"],
                client_key=ctx.turn_key(),
                confirm_repeat=repeat,
            )
        except RepeatNeedsConfirmation as exc:
            data["ago"] = exc.fields["seconds_ago"]
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
    op = await operator(ctx, ctx.data["o"])
    catalog = await ctx.core.catalog.get()
    amount_minor = (
        catalog.product(ctx.data["b"]).price_minor or 0 if "b" in ctx.data else ctx.data["a"]
    )
    return Screen(
        ctx.t(
            "topup.repeat",
            amount=money(amount_minor, op.currency),
            number=national(ctx.data["n"]),
            seconds=ctx.data.get("ago", 0),
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
