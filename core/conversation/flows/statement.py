"""A statement as a document: every movement between two local days, as CSV, after the PIN.

Entered by a channel's command (Telegram's ``/statement [FROM] [TO]``: ``Turn.entry`` is
``T.EXPORT`` and the turn's input answers the first step), on a channel whose screens can carry a
document; not on a menu (USSD's numbering is a contract, and a USSD screen cannot carry a file).
The dates are local days in ``AIRGATE_TIMEZONE``, both included; none means this month so far.

Its data: :class:`Days`, the first and last day.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from msgspec import field

from core.conversation.channel import Shows
from core.conversation.flow import MENU, Ctx, Step, T, end
from core.conversation.flows.common import check_pin
from core.conversation.sessions import Journey
from core.conversation.types import Document, Expects, Screen
from core.services import statement

MAX_DAYS = 366


class S(StrEnum):
    DATES = "export.dates"
    PIN = "export.pin"


TABLE: list[list[str]] = [
    # trigger  source  destination
    [T.EXPORT, MENU, S.DATES],
    [T.NEXT, S.DATES, S.PIN],
]


class Days(Journey, tag="exp"):
    """The local days asked for, both included (stored as ISO dates)."""

    first: date | None = field(default=None, name="df")
    last: date | None = field(default=None, name="dt")


JOURNEYS: dict[str, type[Journey]] = {T.EXPORT: Days}


def _days(ctx: Ctx, text: str) -> tuple[date, date] | None:
    """The range asked for (``FROM [TO]``, or nothing: this month), or None if it cannot be."""
    today = datetime.now(ZoneInfo(ctx.core.settings.timezone)).date()
    try:
        dates = [date.fromisoformat(word) for word in text.split()[:2]]
    except ValueError:
        return None
    start = dates[0] if dates else today.replace(day=1)
    last = dates[1] if len(dates) > 1 else today
    if not start <= last or (last - start).days > MAX_DAYS:
        return None
    return start, last


async def ask_dates(ctx: Ctx) -> Screen:
    return Screen(ctx.t("statement.csv_dates"))


async def take_dates(ctx: Ctx, text: str) -> str | Screen:
    days = _days(ctx, text) if ctx.can(Shows.DOCUMENT) else None
    if days is None:
        return end(ctx.t("statement.csv_dates"))
    asked = ctx.data(Days)
    asked.first, asked.last = days
    return T.NEXT


def _asked(ctx: Ctx) -> tuple[date, date]:
    asked = ctx.data(Days)
    if asked.first is None or asked.last is None:
        raise TypeError("the dates step was not answered")  # a resume point of another release
    return asked.first, asked.last


async def ask_pin(ctx: Ctx) -> Screen:
    start, last = _asked(ctx)
    return Screen(ctx.t("statement.csv_pin", start=start.isoformat(), end=last.isoformat()))


async def send(ctx: Ctx, text: str) -> Screen:
    await check_pin(ctx, text)
    zone = ctx.core.settings.timezone
    start, last = _asked(ctx)
    doc = await statement.for_days(ctx.core, party_id=ctx.party_id, first=start, last=last)
    caption = ctx.t("statement.csv_caption", start=start, end=last, count=len(doc.lines))
    document = Document(f"airgate-statement-{start}-{last}.csv", statement.as_csv(doc, zone=zone))
    return Screen(caption, final=True, document=document)


STEPS: dict[str, Step] = {
    S.DATES: Step(ask_dates, take_dates, expects=Expects.TEXT, resumable=False),
    S.PIN: Step(ask_pin, send, expects=Expects.PIN, resumable=False),
}
