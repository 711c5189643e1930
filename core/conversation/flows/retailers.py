"""A distributor's retailers: the list (stock, low-stock and lock flags), one retailer (sell to
it, unlock its PIN, invite it to Telegram), and today's sales.

What the distributor may do to a retailer is checked by the services (``stock.sell``,
``parties.unlock``, ``links.invite``: only one's own retailers), not by the list it was shown.
"""

from __future__ import annotations

from enum import StrEnum

from core.conversation.flow import MENU, Ctx, Reprompt, Step, T, Zero, end
from core.conversation.flows.common import check_pin, money
from core.conversation.flows.distributor import S as Sell
from core.conversation.types import Expects, Option, Screen
from core.msisdn import national
from core.services import links, parties, reports
from core.services.audit import Actor

CURRENCY = "KES"  # stock totals add every operator's face value; the deployment's currency


class S(StrEnum):
    LIST = "retailers.list"
    ONE = "retailers.one"
    CONFIRM = "retailers.confirm"  # unlock or invite, with the distributor's PIN
    TODAY = "today.sales"


TABLE: list[list[str]] = [
    # trigger  source  destination
    [T.RETAILERS, MENU, S.LIST],
    [T.NEXT, S.LIST, S.ONE],
    [T.SELL, S.ONE, Sell.SELL_OPERATOR],
    [T.UNLOCK, S.ONE, S.CONFIRM],
    [T.INVITE, S.ONE, S.CONFIRM],
    [T.TODAY, MENU, S.TODAY],
]


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
    row = await _row(ctx, int(party_id))
    ctx.data.update(rid=row.party_id, rn=row.name[:24], rm=row.msisdn)
    return T.NEXT


async def show_one(ctx: Ctx) -> Screen:
    row = await _row(ctx, int(ctx.data["rid"]))
    last = f"{row.last_topup_at:%d/%m %H:%M}" if row.last_topup_at else ctx.t("retailers.never")
    text = ctx.t(
        "retailers.detail",
        name=ctx.data["rn"],
        number=national(row.msisdn),
        stock=money(row.stock_minor, CURRENCY),
        last=last,
    )
    options = [Option(ctx.t("retailers.sell"), T.SELL)]
    if row.pin_locked:
        options.append(Option(ctx.t("retailers.unlock"), T.UNLOCK))
    options.append(Option(ctx.t("retailers.invite"), T.INVITE))
    return Screen(text, tuple(options))


async def act(ctx: Ctx, value: str) -> str:
    """Sell goes on to the operator; unlock and invite ask for the distributor's PIN first (a
    phone left open must not reset a retailer's lockout or hand its account to a new device)."""
    ctx.data["act"] = value
    return value


async def show_confirm(ctx: Ctx) -> Screen:
    return Screen(ctx.t(f"retailers.confirm_{ctx.data['act']}", name=ctx.data["rn"]))


async def confirm(ctx: Ctx, text: str) -> Screen:
    await check_pin(ctx, text)
    actor = Actor.party(ctx.party_id, ctx.turn.channel)
    name = ctx.data["rn"]
    if ctx.data["act"] == T.UNLOCK:
        await parties.unlock(ctx.core, actor=actor, ref=ctx.data["rid"])
        return end(ctx.t("retailers.unlocked", name=name))
    ttl_s = ctx.core.settings.telegram_invite_ttl_s
    made = await links.invite(
        ctx.core, ctx.queue.redis, actor=actor, party_ref=ctx.data["rid"], ttl_s=ttl_s
    )
    return end(ctx.t("retailers.invited", name=name, code=made.code, hours=ttl_s // 3600))


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
    S.TODAY: Step(show_today, _nothing),
}
