"""A distributor's support queue: the open cases of its retailers, oldest first, one case, and
what it may do with it: retry (same reference), refund, or close with a note, each confirmed with
the PIN. The queue is :func:`core.services.support.queue`; what may be done, and whether now, is
:func:`core.services.cases.resolve`'s to decide (a refusal is shown with its reason). No step is
resumable: a case shown before a drop may have been settled since.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from msgspec import field

from core.conversation.flow import MENU, Ctx, Reprompt, Step, T, Zero, end, prompt
from core.conversation.flows.common import check_pin, money
from core.conversation.sessions import Journey
from core.conversation.types import Expects, Option, Screen
from core.errors import InputError, NotFound, Refused
from core.models.types import utcnow
from core.msisdn import national
from core.services import cases, support
from core.services.audit import Actor
from core.services.notify import Message
from core.services.requests.messages import enqueue

SHOWN = 50  # cases listed (the oldest); the USSD renderer pages them with 98 More
DAY_S, HOUR_S = 86_400, 3_600
# Reasons with a text of their own.
_REASONS = {f"cases.{r}" for r in ("unknown_outcome", "retailer_report")} | {
    f"cases.{r}" for r in cases.RECON_REASONS
}
NOTE_CHARS = 160


class S(StrEnum):
    LIST = "cases.list"
    ONE = "cases.one"
    NOTE = "cases.note"  # closing: the note the shop will read
    CONFIRM = "cases.confirm"  # the action, with the distributor's PIN


TABLE: list[list[str]] = [
    # trigger  source  destination
    [T.CASES, MENU, S.LIST],
    [T.NEXT, S.LIST, S.ONE],
    [T.NEXT, S.ONE, S.CONFIRM],
    [T.NOTE, S.ONE, S.NOTE],
    [T.NEXT, S.NOTE, S.CONFIRM],
]


class Picked(Journey, tag="case"):
    case_id: int = field(default=0, name="cid")
    act: str = field(default="", name="act")  # a cases.Action
    note: str = field(default="", name="nt")
    # What the confirmation shows, as the case screen showed it.
    name: str = field(default="", name="nm")
    amount: str = field(default="", name="am")
    number: str = field(default="", name="nb")
    ref: str = field(default="", name="rf")


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
    picked = ctx.data(Picked)
    try:
        case = await support.queued_case(
            ctx.core, distributor_id=ctx.party_id, case_id=picked.case_id
        )
    except NotFound:  # resolved since the list was shown
        return end(ctx.t("cases.gone"))
    reason = f"cases.{case.reason}"
    picked.name, picked.amount, picked.ref = (
        case.shop_name[:24],
        _amount(case),
        case.topup_id or "-",
    )
    picked.number = national(case.msisdn) if case.msisdn else "-"
    text = ctx.t(
        "cases.detail",
        case=case.case_id,
        reason=ctx.t(reason) if reason in _REASONS else case.reason,
        name=picked.name,
        phone=national(case.shop_msisdn),
        amount=picked.amount,
        number=picked.number,
        age=_age(ctx, case.opened_at),
        ref=picked.ref,
    )
    options = tuple(Option(ctx.t(f"cases.act_{a}"), a) for a in cases.DISTRIBUTOR_ACTIONS)
    return Screen(text, options)


async def act(ctx: Ctx, value: str) -> str:
    ctx.data(Picked).act = value
    return T.NOTE if value == cases.Action.CLOSE else T.NEXT


async def take_note(ctx: Ctx, text: str) -> str:
    note = " ".join(text.split())[:NOTE_CHARS]
    if not note:
        raise Reprompt(key="cases.why_note")
    ctx.data(Picked).note = note
    return T.NEXT


async def show_confirm(ctx: Ctx) -> Screen:
    picked = ctx.data(Picked)
    fields = {"case": picked.case_id, "name": picked.name, "amount": picked.amount}
    fields |= {"number": picked.number, "ref": picked.ref}
    return Screen(ctx.t(f"cases.confirm_{picked.act}", **fields))


async def decide(ctx: Ctx, text: str) -> Screen:
    await check_pin(ctx, text)
    picked = ctx.data(Picked)
    queue = ctx.queue

    async def outbox(owed: Sequence[Message]) -> None:
        await enqueue(queue, owed)

    async def requeue(topup_id: str, sends: int, checks: int) -> None:
        await queue.deliver(topup_id, sends=sends, checks=checks, fresh=False)

    try:
        done = await cases.resolve(
            ctx.core,
            case_id=picked.case_id,
            action=cases.Action(picked.act),
            actor=Actor.party(ctx.party_id, ctx.turn.channel),
            outbox=outbox,
            note=picked.note or None,
            distributor_id=ctx.party_id,
            requeue=requeue,
        )
    except NotFound:
        return end(ctx.t("cases.gone"))
    except (Refused, InputError) as exc:
        why = exc.fields.get("why", "cases.why_other")
        return end(ctx.t("cases.refused", case=picked.case_id, why=ctx.t(why)))
    return end(ctx.t(done.key, **done.fields))


STEPS: dict[str, Step] = {
    S.LIST: Step(show_list, pick, resumable=False),
    S.ONE: Step(show_one, act, resumable=False),
    S.NOTE: Step(
        prompt(
            "cases.note", case=lambda c: c.data(Picked).case_id, name=lambda c: c.data(Picked).name
        ),
        take_note,
        Expects.TEXT,
        resumable=False,
    ),
    S.CONFIRM: Step(show_confirm, decide, Expects.PIN, Zero.CANCEL, resumable=False),
}
