"""What several flows ask for: a phone number, an amount, a PIN, an operator (and the data the
operator step keeps, :class:`Chosen`); and how money reads on a screen."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from msgspec import field

from core.conversation.flow import Ctx, Reprompt, Step, T
from core.conversation.sessions import Journey
from core.conversation.types import Option, Screen
from core.errors import NotFound
from core.models import Operator
from core.money import format_minor, parse_major
from core.msisdn import is_foreign, national, normalize
from core.security import Pin
from core.services import parties

MAX_AMOUNT_CHARS = 15  # "1,000,000.00" and some slack; longer is not an amount


def money(amount_minor: int, currency: str) -> str:
    return format_minor(amount_minor, currency)


def local(ctx: Ctx, at: datetime) -> datetime:
    """``at`` (UTC) as a person reads it: in the deployment's ``AIRGATE_TIMEZONE``."""
    return at.astimezone(ZoneInfo(ctx.core.settings.timezone))  # ZoneInfo caches its zones


async def take_number(ctx: Ctx, text: str) -> tuple[str, Operator]:
    """A customer's number in any accepted form, as E.164, and its operator."""
    country = ctx.core.settings.country
    msisdn = normalize(text, country=country)  # InvalidMsisdn: re-prompt
    if is_foreign(msisdn, country=country):
        raise Reprompt(key="error.foreign_number", number=msisdn)
    catalog = await ctx.core.catalog.get()
    try:
        return msisdn, catalog.detect(msisdn)
    except NotFound:
        raise Reprompt(key="error.no_operator", number=national(msisdn)) from None


def take_amount(text: str) -> int:
    """Whole or decimal major units (``500``, ``1,000``, ``99.50``) as minor units, above zero."""
    try:
        amount = parse_major(text) if len(text) <= MAX_AMOUNT_CHARS else 0
    except ValueError:
        amount = 0
    if amount <= 0:
        raise Reprompt(key="error.amount_format")
    return amount


async def check_pin(ctx: Ctx, text: str) -> None:
    """The party's PIN, or WrongPin (re-prompt with attempts left) / PinLocked (the end)."""
    await parties.check_pin(
        ctx.core, party_id=ctx.party_id, pin=Pin(text), channel=ctx.turn.channel
    )


async def operator(ctx: Ctx, code: str) -> Operator:
    return (await ctx.core.catalog.get()).operator(code)


class Chosen(Journey):
    """The data of a journey with an operator step (:func:`operator_choice`): each such journey's
    own struct extends it, so the one step fills them all."""

    operator: str = field(default="", name="o")  # its code


def operator_choice(text_key: str, **fields: Callable[[Ctx], object]) -> Step:
    """A step choosing one of the country's operators (kept as ``Chosen.operator``), then
    ``next``."""

    async def show(ctx: Ctx) -> Screen:
        options = tuple(Option(op.name, op.code) for op in await operators(ctx))
        return Screen(ctx.t(text_key, **{k: f(ctx) for k, f in fields.items()}), options)

    async def pick(ctx: Ctx, code: str) -> str:
        ctx.data(Chosen).operator = code
        return T.NEXT

    return Step(show, pick)


async def operators(ctx: Ctx) -> list[Operator]:
    """The operators of this deployment's country, by name."""
    catalog = await ctx.core.catalog.get()
    country = ctx.core.settings.country
    return sorted(
        (op for op in catalog.operators.values() if op.country == country), key=lambda o: o.name
    )
