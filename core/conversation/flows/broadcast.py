"""A distributor's broadcast: compose → audience → preview with the count → PIN → queued.

The audience is counted on the preview and fixed on confirmation (core/services/broadcast/);
the worker sends it and edits the progress into the distributor's Telegram chat, or sends the
final report by SMS to a distributor without Telegram.
"""

from __future__ import annotations

from enum import StrEnum

from msgspec import field

from core.conversation.flow import MENU, Ctx, Reprompt, Step, T, Zero, choices, end, prompt
from core.conversation.flows.common import Chosen, check_pin, operator_choice
from core.conversation.sessions import Journey
from core.conversation.types import Expects, Screen
from core.services import broadcast
from core.services.audit import Actor

EXCERPT = 40  # characters of the message shown on the preview


class S(StrEnum):
    TEXT = "broadcast.text"
    AUDIENCE = "broadcast.audience"
    OPERATOR = "broadcast.operator"
    TAG = "broadcast.tag"
    CONFIRM = "broadcast.confirm"


TABLE: list[list[str]] = [
    # trigger  source  destination
    [T.BROADCAST, MENU, S.TEXT],
    [T.NEXT, S.TEXT, S.AUDIENCE],
    [T.NEXT, S.AUDIENCE, S.CONFIRM],  # all my retailers
    [T.LOW_STOCK, S.AUDIENCE, S.OPERATOR],
    [T.TAG, S.AUDIENCE, S.TAG],
    [T.NEXT, S.OPERATOR, S.CONFIRM],
    [T.NEXT, S.TAG, S.CONFIRM],
]
AUDIENCES = [
    (T.NEXT, "broadcast.all"),
    (T.LOW_STOCK, "broadcast.low"),
    (T.TAG, "broadcast.tag"),
]


class Draft(Chosen, tag="bc"):
    """A broadcast being composed: its text, and its audience (all, the retailers low on the
    chosen operator's stock, or those with a tag)."""

    text: str = field(default="", name="bt")
    audience: str = field(default="all", name="ba")  # broadcast.Audience's kind
    tag: str = field(default="", name="bg")


JOURNEYS: dict[str, type[Journey]] = {T.BROADCAST: Draft}


async def take_text(ctx: Ctx, text: str) -> str:
    text = " ".join(text.split())
    if not text:
        raise Reprompt(key="broadcast.empty")
    ctx.data(Draft).text = text[: broadcast.MAX_TEXT]
    return T.NEXT


async def take_audience(ctx: Ctx, value: str) -> str:
    ctx.data(Draft).audience = {T.LOW_STOCK: "low", T.TAG: "tag"}.get(T(value), "all")
    return value


async def take_tag(ctx: Ctx, text: str) -> str:
    tag = text.strip().lower()[:40]
    if not tag:
        raise Reprompt(key="broadcast.tag_prompt")
    ctx.data(Draft).tag = tag
    return T.NEXT


def audience(ctx: Ctx) -> broadcast.Audience:
    draft = ctx.data(Draft)
    value = {"low": draft.operator, "tag": draft.tag}.get(draft.audience, "")
    return broadcast.Audience(draft.audience, value)


async def show_confirm(ctx: Ctx) -> Screen:
    seen = await broadcast.preview(ctx.core, distributor_id=ctx.party_id, audience=audience(ctx))
    if not seen.total:
        return end(ctx.t("broadcast.none"))
    text = ctx.data(Draft).text
    excerpt = text if len(text) <= EXCERPT else f"{text[: EXCERPT - 3]}..."
    return Screen(
        ctx.t(
            "broadcast.confirm",
            count=seen.total,
            telegram=seen.telegram,
            sms=seen.sms,
            excerpt=excerpt,
        )
    )


async def send(ctx: Ctx, text: str) -> Screen:
    await check_pin(ctx, text)
    created = await broadcast.create(
        ctx.core,
        distributor_id=ctx.party_id,
        text=ctx.data(Draft).text,
        audience=audience(ctx),
        key=ctx.turn_key(),
        actor=Actor.party(ctx.party_id, ctx.turn.channel),
    )
    # Enqueued after the commit; if Redis is away the sweeper finds the broadcast still sending.
    await ctx.queue.broadcast(created.id)
    return end(ctx.t("broadcast.queued", id=created.id, count=created.preview.total))


STEPS: dict[str, Step] = {
    S.TEXT: Step(prompt("broadcast.text"), take_text, Expects.TEXT),
    S.AUDIENCE: Step(choices("broadcast.audience", AUDIENCES), take_audience),
    S.OPERATOR: operator_choice("broadcast.operator"),
    S.TAG: Step(prompt("broadcast.tag_prompt"), take_tag, Expects.TEXT),
    S.CONFIRM: Step(show_confirm, send, Expects.PIN, Zero.CANCEL),
}
