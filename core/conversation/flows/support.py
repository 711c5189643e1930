"""Support: pick one of the last top-ups, say yes to reporting it, and the aggregator is asked
first: when its record answers (delivered, at what time, the operator's reference; or failed and
the stock back) the shop reads the answer at once and the case is closed; otherwise the case goes
to the shop's distributor, who is told (core/services/case_intake.py). An open case that exists is
shown (the worker opens one itself for a top-up whose outcome stayed unknown). Nothing is opened
before the yes: a case calls a person out."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from msgspec import field

from core.conversation.flow import MENU, Ctx, Reprompt, Step, T, Zero, end
from core.conversation.flows.common import local, money
from core.conversation.sessions import Journey
from core.conversation.types import Option, Screen
from core.msisdn import national
from core.services import case_intake, support
from core.services.audit import Actor
from core.services.notify import Message
from core.services.requests.messages import enqueue

RECENT = 5
YES = "yes"


class S(StrEnum):
    PICK = "support.pick"
    CONFIRM = "support.confirm"


TABLE: list[list[str]] = [
    # trigger  source  destination
    [T.SUPPORT, MENU, S.PICK],
    [T.NEXT, S.PICK, S.CONFIRM],
]


class Report(Journey, tag="sup"):
    """The top-up picked, as the list showed it."""

    topup_id: str = field(default="", name="t")
    amount_minor: int = field(default=0, name="ta")
    currency: str = field(default="", name="tc")
    msisdn: str = field(default="", name="n")


JOURNEYS: dict[str, type[Journey]] = {T.SUPPORT: Report}


async def show_recent(ctx: Ctx) -> Screen:
    topups = await support.recent_topups(ctx.core, party_id=ctx.party_id, limit=RECENT)
    if not topups:
        return end(ctx.t("support.none"))
    options = tuple(
        Option(
            f"{national(tp.msisdn)} {money(tp.amount_minor, tp.currency)}"
            f" {local(ctx, tp.created_at):%d/%m}",
            tp.id,
        )
        for tp in topups
    )
    return Screen(ctx.t("support.pick"), options)


async def pick(ctx: Ctx, topup_id: str) -> str:
    topups = await support.recent_topups(ctx.core, party_id=ctx.party_id, limit=RECENT)
    topup = next((tp for tp in topups if tp.id == topup_id), None)
    if topup is None:
        raise Reprompt(key="error.stale")
    report = ctx.data(Report)
    report.topup_id, report.msisdn = topup.id, topup.msisdn
    report.amount_minor, report.currency = topup.amount_minor, topup.currency
    return T.NEXT


async def show_confirm(ctx: Ctx) -> Screen:
    report = ctx.data(Report)
    text = ctx.t(
        "support.confirm",
        ref=report.topup_id,
        amount=money(report.amount_minor, report.currency),
        number=national(report.msisdn),
    )
    return Screen(text, (Option(ctx.t("support.yes"), YES),))


async def open_case(ctx: Ctx, _yes: str) -> Screen:
    topup_id = ctx.data(Report).topup_id
    queue = ctx.queue

    async def outbox(owed: Sequence[Message]) -> None:
        await enqueue(queue, owed)

    reported = await case_intake.report(
        ctx.core,
        actor=Actor.party(ctx.party_id, ctx.turn.channel),
        party_id=ctx.party_id,
        topup_id=topup_id,
        language=ctx.lang,
        outbox=outbox,
    )
    if reported.answer is not None:
        return end(reported.answer)
    key = "support.to_distributor" if reported.opened else "support.exists"
    return end(ctx.t(key, case=reported.case_id, ref=topup_id))


STEPS: dict[str, Step] = {
    S.PICK: Step(show_recent, pick),
    S.CONFIRM: Step(show_confirm, open_case, zero=Zero.CANCEL),
}
