"""A ``Screen`` as a Telegram message: its text, and its options as inline buttons.

Invariant: callback data is the option's number in the whole list (as on USSD) with the screen's
tag (``3:a1b2c3``: a press on an old message whose list has changed since is asked again), or one
of the engine's keys (``0`` back, ``98`` more, ``00`` main menu): never longer than 64 bytes,
never a value the engine did not offer.
"""

from __future__ import annotations

from math import ceil

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)

from core.conversation.types import Expects, Nav, Screen
from core.i18n import DEFAULT_LANGUAGE, t

PER_PAGE = 12  # options per message (a whole main menu: the distributor's has 11); more behind "98"
BACK, MORE, MAIN = Nav.BACK, Nav.MORE, Nav.MAIN
SEP = ":"  # an option's button: "{number}:{the screen's tag}" (the engine checks the tag)

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup


def pages(screen: Screen) -> int:
    return max(ceil(len(screen.options) / PER_PAGE), 1)


def markup(screen: Screen) -> Markup:
    if screen.expects == Expects.CONTACT:
        button = KeyboardButton(t(DEFAULT_LANGUAGE, "start.share_contact"), request_contact=True)
        return ReplyKeyboardMarkup([[button]], one_time_keyboard=True, resize_keyboard=True)
    return buttons(screen)


def buttons(screen: Screen) -> InlineKeyboardMarkup:
    """The options of the screen's page, then back / more / main menu."""
    first = screen.page * PER_PAGE
    shown = screen.options[first : first + PER_PAGE]
    tag = screen.tag()
    rows = [
        [InlineKeyboardButton(option.label, callback_data=f"{number}{SEP}{tag}")]
        for number, option in enumerate(shown, start=first + 1)
    ]
    nav = []
    if not screen.final:
        nav.append(InlineKeyboardButton(f"\u2b05 {BACK}", callback_data=BACK))
        if first + PER_PAGE < len(screen.options):
            nav.append(InlineKeyboardButton(f"{MORE} \u27a1", callback_data=MORE))
    nav.append(InlineKeyboardButton(f"\U0001f3e0 {MAIN}", callback_data=MAIN))
    return InlineKeyboardMarkup([*rows, nav])
