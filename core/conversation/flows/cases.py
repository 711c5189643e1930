"""A distributor's support queue: the open cases of its retailers, oldest first, and one case.

Reads only: a case is resolved by support (the console), not from a handset. The queue is
:func:`core.services.support.queue`, which is also what decides whose cases a distributor sees.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from msgspec import field

from core.conversation.flow import MENU, Ctx, Step, T, end
from core.conversation.flows.common import money
from core.conversation.sessions import Journey
from core.conversation.types import Option, Screen
from core.errors import NotFound
from core.models.types import utcnow
from core.msisdn import national
from core.services import support

SHOWN = 50  # cases listed (the oldest); the USSD renderer pages them with 98 More
DAY_S, HOUR_S = 86_400, 3_600
_REASONS = {"cases.unknown_outcome", "cases.retailer_report"}  # reasons with a text of their own


class S(StrEnum):
    LIST = "cases.list"
    ONE = "cases.one"


TABLE: list[list[str]] = [
    # trigger  source  destination
    [T.CASES, MENU, S.LIST],
    [T.NEXT, S.LIST, S.ONE],
]


class Picked(Journey, tag="case"):
    case_id: int = field(default=0, name="cid")


JOURNEYS: dict[str, type[Journey]] = {T.CASES: Picked}


def _age(ctx: Ctx, opened_at: datetime) -> str:
    seconds = max(int((utcnow() - opened_at).total_seconds()), 0)
    if seconds < 2 * DAY_S:
        return ctx.t("cases.hours", count=seconds // HOUR_S)
    return ctx.t("cases.days", count=seconds // DAY_S)


def _amount(case: support.QueuedCase) -> str:
    if case.amount_minor is None:
        return "-"
    return money(case.amount_minor, case.currency or "")


async def show_list(ctx: Ctx) -> Screen:
    cases = await support.queue(ctx.core, distributor_id=ctx.party_id, limit=SHOWN)
    if not cases:
        return end(ctx.t("cases.none"))
    options = tuple(
        Option(
            f"#{c.case_id} {c.shop_name[:14]} {_amount(c)} {_age(ctx, c.opened_at)}", str(c.case_id)
        )
        for c in cases
    )
    return Screen(ctx.t("cases.title"), options)


async def pick(ctx: Ctx, case_id: str) -> str:
    ctx.data(Picked).case_id = int(case_id)
    return T.NEXT


async def show_one(ctx: Ctx) -> Screen:
    try:
        case = await support.queued_case(
            ctx.core, distributor_id=ctx.party_id, case_id=ctx.data(Picked).case_id
        )
    except NotFound:  # resolved since the list was shown
        return end(ctx.t("cases.gone"))
    reason = f"cases.{case.reason}"
    return end(
        ctx.t(
            "cases.detail",
            case=case.case_id,
            reason=ctx.t(reason) if reason in _REASONS else case.reason,
            name=case.shop_name[:24],
            phone=national(case.shop_msisdn),
            amount=_amount(case),
            number=national(case.msisdn) if case.msisdn else "-",
            age=_age(ctx, case.opened_at),
            ref=case.topup_id or "-",
        )
    )


async def _nothing(_ctx: Ctx, _text: str) -> str:  # pragma: no cover - a final screen
    return T.NEXT


STEPS: dict[str, Step] = {
    S.LIST: Step(show_list, pick),
    S.ONE: Step(show_one, _nothing),
}
