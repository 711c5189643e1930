"""Linking an account of a channel (a Telegram user) to a party: its own phone number, then the PIN.

Invariant: an account acts for a party only after proof: the party's phone number shared through
the channel's contact button (the channel proves it is the user's own: ``Turn.contact``; a typed
number proves nothing, or anyone could lock a party's PIN by guessing it) and the party's PIN,
checked and counted like any PIN try. The engine offers this flow to an account nobody linked
yet, on a channel that identifies by accounts and can ask for a contact; once linked, the journey
starts over as the party (``AGAIN``), with "Linked to ..." above its menu.

Its data: :class:`Contact`, made at the menu (its first question: the shared contact).
"""

from __future__ import annotations

from enum import StrEnum

from msgspec import field

from core.context import Core
from core.conversation.flow import AGAIN, MENU, Ctx, Reprompt, Step, T, end
from core.conversation.sessions import Journey
from core.conversation.types import Expects, Screen
from core.errors import AlreadyExists, InputError, InvalidMsisdn, NotFound
from core.models import Party
from core.msisdn import national, normalize
from core.security import Pin
from core.services import identities, parties

HOW = "contact"  # the audit trail's word for a link made this way


class S(StrEnum):
    PIN = "link.pin"


TABLE: list[list[str]] = [
    # trigger  source  destination
    [T.NEXT, MENU, S.PIN],
]


class Contact(Journey, tag="link"):
    party: int = field(default=0, name="lp")  # whose number the shared contact is


JOURNEYS: dict[str, type[Journey]] = {MENU: Contact}  # the flow's menu is its first question


async def _party_by_number(core: Core, msisdn: str) -> Party | None:
    async with core.sessions() as session:
        try:
            return await parties.get_party(session, msisdn, country=core.settings.country)
        except (NotFound, InvalidMsisdn):
            return None


async def ask_contact(ctx: Ctx) -> Screen:
    return Screen(ctx.t("start.unlinked"), (), Expects.CONTACT)


async def take_contact(ctx: Ctx, text: str) -> str | Screen:
    if not ctx.turn.contact:
        raise Reprompt(key="link.not_yours")
    # Real clients often send the number without "+"; it is always international.
    try:
        msisdn = normalize(text if text.startswith("+") else f"+{text}", country="ZZ")
    except InputError:
        msisdn = ""
    party = await _party_by_number(ctx.core, msisdn) if msisdn else None
    if party is None or party.id is None:
        number = national(msisdn) if msisdn else text[:20]
        return end(ctx.t("link.not_registered", number=number))
    ctx.data(Contact).party = party.id
    ctx.session.lang = party.language
    return T.NEXT


async def ask_pin(ctx: Ctx) -> Screen:
    async with ctx.core.sessions() as session:
        party = await parties.get_party(
            session, ctx.data(Contact).party, country=ctx.core.settings.country
        )
    return Screen(ctx.t("link.pin", number=national(party.msisdn)))


async def take_pin(ctx: Ctx, text: str) -> str | Screen:
    party_id, channel = ctx.data(Contact).party, ctx.turn.channel
    party = await parties.check_pin(ctx.core, party_id=party_id, pin=Pin(text), channel=channel)
    try:
        await identities.link(
            ctx.core, party_id=party_id, channel=channel, external_id=ctx.turn.user_ref, how=HOW
        )
    except AlreadyExists:
        return end(ctx.t("link.taken"))
    ctx.notice = ctx.t("link.done", name=party.name)
    return AGAIN


STEPS: dict[str, Step] = {
    MENU: Step(ask_contact, take_contact, expects=Expects.CONTACT, resumable=False),
    S.PIN: Step(ask_pin, take_pin, expects=Expects.PIN, resumable=False),
}
