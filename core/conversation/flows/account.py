"""My account: change the PIN, choose the language.

A new PIN is asked twice, then the current one authorises the change; between hops the session
holds only the new PIN's peppered hash (core/security.py), never a PIN.
"""

from __future__ import annotations

from enum import StrEnum

from msgspec import field

from core.conversation.flow import MENU, Ctx, Step, T, Zero, choices, end, fire, prompt
from core.conversation.sessions import Journey
from core.conversation.types import Expects, Option, Screen
from core.i18n import LANGUAGES, t
from core.security import Pin
from core.services import parties
from core.services.audit import Actor


class S(StrEnum):
    ACCOUNT = "account"
    PIN_NEW = "account.pin_new"
    PIN_REPEAT = "account.pin_repeat"
    PIN_CURRENT = "account.pin_current"
    LANGUAGE = "account.language"


TABLE: list[list[str]] = [
    # trigger  source  destination
    [T.ACCOUNT, MENU, S.ACCOUNT],
    [T.PIN, S.ACCOUNT, S.PIN_NEW],
    [T.NEXT, S.PIN_NEW, S.PIN_REPEAT],
    [T.RETRY, S.PIN_REPEAT, S.PIN_NEW],
    [T.NEXT, S.PIN_REPEAT, S.PIN_CURRENT],
    [T.LANGUAGE, S.ACCOUNT, S.LANGUAGE],
]


class NewPin(Journey, tag="acc"):
    pin_hash: str = field(default="", name="nh")  # the new PIN, peppered and hashed


JOURNEYS: dict[str, type[Journey]] = {T.ACCOUNT: NewPin}


ACCOUNT_MENU = [(T.PIN, "account.pin"), (T.LANGUAGE, "account.lang")]


async def new_pin(ctx: Ctx, text: str) -> str:
    ctx.data(NewPin).pin_hash = ctx.core.pins.hash(Pin(text))
    return T.NEXT


async def repeat_pin(ctx: Ctx, text: str) -> str:
    if not ctx.core.pins.verify(Pin(text), ctx.data(NewPin).pin_hash):
        ctx.notice = ctx.t("account.pin_mismatch")
        return T.RETRY
    return T.NEXT


async def current_pin(ctx: Ctx, text: str) -> Screen:
    await parties.set_pin(
        ctx.core,
        actor=Actor.party(ctx.party_id, ctx.turn.channel),
        ref=ctx.party_id,
        pin_hash=ctx.data(NewPin).pin_hash,  # kept until it is set: a wrong current PIN asks again
        current=Pin(text),
    )
    return end(ctx.t("account.pin_changed"))


async def show_languages(ctx: Ctx) -> Screen:
    # Each language by its own name, whatever the current one.
    options = tuple(Option(t(lang, "account.language_name"), lang) for lang in LANGUAGES)
    return Screen(ctx.t("account.language"), options)


async def language(ctx: Ctx, lang: str) -> Screen:
    actor = Actor.party(ctx.party_id, ctx.turn.channel)
    await parties.set_language(ctx.core, actor=actor, party_id=ctx.party_id, language=lang)
    ctx.session.lang = lang
    return end(ctx.t("account.language_set"))


STEPS: dict[str, Step] = {
    S.ACCOUNT: Step(choices("account.title", ACCOUNT_MENU), fire),
    S.PIN_NEW: Step(prompt("account.pin_new"), new_pin, Expects.PIN),
    # After the first PIN entry nothing is resumed: the new PIN is asked again from the start.
    S.PIN_REPEAT: Step(prompt("account.pin_repeat"), repeat_pin, Expects.PIN, resumable=False),
    S.PIN_CURRENT: Step(
        prompt("account.pin_current"), current_pin, Expects.PIN, Zero.CANCEL, resumable=False
    ),
    S.LANGUAGE: Step(show_languages, language),
}
