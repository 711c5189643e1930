"""A distributor's retailers: the list (stock, low-stock and lock flags), one retailer (sell to
it, record a deposit of cash it handed over, unlock its PIN, invite it to Telegram), and today's
sales.

What the distributor may do to a retailer is checked by the services (``stock.sell``,
``parties.unlock``, ``links.invite``, ``stock.deposit``: only one's own retailers), not by the list
it was shown. A deposit repays the retailer's used credit first, the rest becomes its cash; its
reference (an M-Pesa code, or one made here) is recorded once per distributor.
"""

from __future__ import annotations

import secrets
from enum import StrEnum

from msgspec import field

from core.conversation.flow import MENU, Ctx, Reprompt, Step, T, Zero, end, prompt
from core.conversation.flows.common import check_pin, local, money, take_amount
from core.conversation.flows.distributor import NAME_CHARS, Sale
from core.conversation.flows.distributor import S as Sell
from core.conversation.sessions import Journey
from core.conversation.types import Expects, Option, Screen
from core.errors import DuplicateReference
from core.msisdn import national
from core.services import links, parties, reports, stock
from core.services.audit import Actor

CURRENCY = "KES"  # stock totals add every operator's face value; the deployment's currency
# A deposit's reference as typed: an M-Pesa code is 10 characters; more would not fit the screens.
REFERENCE_CHARS = 24
AUTO_REFERENCE = "1"  # the option "make one for me" on the reference step


class S(StrEnum):
    LIST = "retailers.list"
    ONE = "retailers.one"
    CONFIRM = "retailers.confirm"  # unlock or invite, with the distributor's PIN
    DEPOSIT_AMOUNT = "retailers.deposit_amount"
    DEPOSIT_REF = "retailers.deposit_ref"
    DEPOSIT_CONFIRM = "retailers.deposit_confirm"
    TODAY = "today.sales"


TABLE: list[list[str]] = [
    # trigger  source  destination
    [T.RETAILERS, MENU, S.LIST],
    [T.NEXT, S.LIST, S.ONE],
    [T.SELL, S.ONE, Sell.SELL_OPERATOR],
    [T.UNLOCK, S.ONE, S.CONFIRM],
    [T.INVITE, S.ONE, S.CONFIRM],
    [T.DEPOSIT, S.ONE, S.DEPOSIT_AMOUNT],
    [T.NEXT, S.DEPOSIT_AMOUNT, S.DEPOSIT_REF],
    [T.NEXT, S.DEPOSIT_REF, S.DEPOSIT_CONFIRM],
    [T.TODAY, MENU, S.TODAY],
]


class Retailer(Sale, tag="ret"):
    """One retailer's page and what is done from it: a sale (the sell steps, whose data this
    extends), unlock or invite (``act``), or a deposit."""

    act: str = field(default="", name="act")  # T.UNLOCK or T.INVITE, confirmed with the PIN
    deposit_minor: int = field(default=0, name="dm")
    reference: str = field(default="", name="dr")  # the deposit's


JOURNEYS: dict[str, type[Journey]] = {T.RETAILERS: Retailer}


async def show_list(ctx: Ctx) -> Screen:
    rows = await reports.retailers_of(ctx.core, distributor_id=ctx.party_id)
    if not rows:
        return end(ctx.t("retailers.none"))
    threshold = ctx.core.settings.low_stock_minor
    options = []
    for row in rows:
        flags = [ctx.t("retailers.low")] if row.low(threshold) else []
        flags += [ctx.t("retailers.locked")] if row.pin_locked else []
        label = f"{row.name[:20]} {money(row.stock_minor, CURRENCY)}"
        options.append(Option(" ".join([label, *flags]), str(row.party_id)))
    return Screen(ctx.t("retailers.title"), tuple(options))


async def _row(ctx: Ctx, party_id: int) -> reports.RetailerRow:
    rows = await reports.retailers_of(ctx.core, distributor_id=ctx.party_id)
    row = next((r for r in rows if r.party_id == party_id), None)
    if row is None:  # moved to another distributor since the list was shown
        raise Reprompt(key="sell.not_yours")
    return row


async def pick(ctx: Ctx, party_id: str) -> str:
    row, retailer = await _row(ctx, int(party_id)), ctx.data(Retailer)
    retailer.retailer_id, retailer.retailer_msisdn = row.party_id, row.msisdn
    retailer.retailer_name = row.name[:NAME_CHARS]
    return T.NEXT


async def show_one(ctx: Ctx) -> Screen:
    retailer = ctx.data(Retailer)
    row = await _row(ctx, retailer.retailer_id)
    last = (
        f"{local(ctx, row.last_topup_at):%d/%m %H:%M}"
        if row.last_topup_at
        else ctx.t("retailers.never")
    )
    text = ctx.t(
        "retailers.detail",
        name=retailer.retailer_name,
        number=national(row.msisdn),
        stock=money(row.stock_minor, CURRENCY),
        last=last,
    )
    options = [Option(ctx.t("retailers.sell"), T.SELL)]
    if row.pin_locked:
        options.append(Option(ctx.t("retailers.unlock"), T.UNLOCK))
    options.append(Option(ctx.t("retailers.invite"), T.INVITE))
    options.append(Option(ctx.t("deposit.option"), T.DEPOSIT))  # last: the others keep numbers
    return Screen(text, tuple(options))


async def act(ctx: Ctx, value: str) -> str:
    """Sell goes on to the operator; unlock and invite ask for the distributor's PIN first (a
    phone left open must not reset a retailer's lockout or hand its account to a new device)."""
    ctx.data(Retailer).act = value
    return value


async def show_confirm(ctx: Ctx) -> Screen:
    retailer = ctx.data(Retailer)
    return Screen(ctx.t(f"retailers.confirm_{retailer.act}", name=retailer.retailer_name))


async def confirm(ctx: Ctx, text: str) -> Screen:
    await check_pin(ctx, text)
    actor, retailer = Actor.party(ctx.party_id, ctx.turn.channel), ctx.data(Retailer)
    name = retailer.retailer_name
    if retailer.act == T.UNLOCK:
        await parties.unlock(ctx.core, actor=actor, ref=retailer.retailer_id)
        return end(ctx.t("retailers.unlocked", name=name))
    ttl_s = ctx.core.settings.telegram_invite_ttl_s
    made = await links.invite(
        ctx.core, ctx.queue.redis, actor=actor, party_ref=retailer.retailer_id, ttl_s=ttl_s
    )
    return end(ctx.t("retailers.invited", name=name, code=made.code, hours=ttl_s // 3600))


async def deposit_amount(ctx: Ctx, text: str) -> str:
    ctx.data(Retailer).deposit_minor = take_amount(text)
    return T.NEXT


async def show_deposit_ref(ctx: Ctx) -> Screen:
    return Screen(ctx.t("deposit.reference"), (Option(ctx.t("deposit.auto"), AUTO_REFERENCE),))


async def deposit_ref(ctx: Ctx, text: str) -> str:
    """The payment's reference as typed, or one made here (short, to be written down)."""
    if text == AUTO_REFERENCE:
        reference = f"DEP-{secrets.token_hex(4).upper()}"
    elif len(text) <= REFERENCE_CHARS and stock.REFERENCE.fullmatch(text):
        reference = text
    else:
        raise Reprompt(key="deposit.bad_reference")
    ctx.data(Retailer).reference = reference
    return T.NEXT


async def show_deposit_confirm(ctx: Ctx) -> Screen:
    retailer = ctx.data(Retailer)
    return Screen(
        ctx.t(
            "deposit.confirm",
            amount=money(retailer.deposit_minor, CURRENCY),
            name=retailer.retailer_name,
            reference=retailer.reference,
        )
    )


async def record_deposit(ctx: Ctx, text: str) -> Screen:
    await check_pin(ctx, text)
    retailer = ctx.data(Retailer)
    reference = retailer.reference
    try:
        receipt = await stock.deposit(
            ctx.core,
            actor=Actor.party(ctx.party_id, ctx.turn.channel),
            receiver_ref=ctx.party_id,
            payer_ref=retailer.retailer_id,
            amount_minor=retailer.deposit_minor,
            reference=reference,
            currency=CURRENCY,
        )
    except DuplicateReference:
        return end(ctx.t("deposit.duplicate", reference=reference))
    return end(
        ctx.t(
            "deposit.done",
            amount=money(receipt.price_minor, CURRENCY),
            name=retailer.retailer_name,
            credit=money(receipt.credit_minor, CURRENCY),
            cash=money(receipt.cash_minor, CURRENCY),
            reference=reference,
        )
    )


async def show_today(ctx: Ctx) -> Screen:
    sales = await reports.today_sales(ctx.core, distributor_id=ctx.party_id)
    return end(
        ctx.t(
            "today.sales",
            count=sales.topups,
            amount=money(sales.topup_minor, CURRENCY),
            open=sales.open_topups,
        )
    )


async def _nothing(_ctx: Ctx, _text: str) -> str:  # pragma: no cover - a final screen
    return T.NEXT


STEPS: dict[str, Step] = {
    S.LIST: Step(show_list, pick),
    S.ONE: Step(show_one, act),
    S.CONFIRM: Step(show_confirm, confirm, Expects.PIN, Zero.CANCEL, resumable=False),
    S.DEPOSIT_AMOUNT: Step(
        prompt("deposit.amount", name=lambda ctx: ctx.data(Retailer).retailer_name),
        deposit_amount,
        Expects.AMOUNT,
    ),
    S.DEPOSIT_REF: Step(show_deposit_ref, deposit_ref, Expects.TEXT),
    S.DEPOSIT_CONFIRM: Step(
        show_deposit_confirm, record_deposit, Expects.PIN, Zero.CANCEL, resumable=False
    ),
    S.TODAY: Step(show_today, _nothing),
}
