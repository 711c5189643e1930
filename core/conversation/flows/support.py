"""Support: pick one of the last top-ups, and a case is opened about it (or the one that exists
is shown: the worker opens one itself for a top-up whose outcome stayed unknown)."""

from __future__ import annotations

from enum import StrEnum

from core.conversation.flow import MENU, Ctx, Step, T, end
from core.conversation.flows.common import money
from core.conversation.types import Option, Screen
from core.msisdn import national
from core.services import support
from core.services.audit import Actor

RECENT = 5


class S(StrEnum):
    PICK = "support.pick"


TABLE: list[list[str]] = [
    # trigger  source  destination
    [T.SUPPORT, MENU, S.PICK],
]


async def show_recent(ctx: Ctx) -> Screen:
    topups = await support.recent_topups(ctx.core, party_id=ctx.party_id, limit=RECENT)
    if not topups:
        return end(ctx.t("support.none"))
    options = tuple(
        Option(
            f"{national(tp.msisdn)} {money(tp.amount_minor, tp.currency)} {tp.created_at:%d/%m}",
            tp.id,
        )
        for tp in topups
    )
    return Screen(ctx.t("support.pick"), options)


async def report(ctx: Ctx, topup_id: str) -> Screen:
    case, opened = await support.open_case(
        ctx.core,
        actor=Actor.party(ctx.party_id, ctx.turn.channel),
        party_id=ctx.party_id,
        topup_id=topup_id,
    )
    key = "support.opened" if opened else "support.exists"
    return end(ctx.t(key, case=case.id, ref=topup_id))


STEPS: dict[str, Step] = {S.PICK: Step(show_recent, report)}
