"""What a channel adapter hands the engine and what it gets back: nothing channel-specific."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.conversation.sessions import SeenPath


class Expects(StrEnum):
    """The free input a screen waits for (a channel may render a keypad or a hint)."""

    CHOICE = "choice"  # one of the options
    MSISDN = "msisdn"
    AMOUNT = "amount"
    PIN = "pin"
    TEXT = "text"
    CONTACT = "contact"  # the user's own phone contact (Telegram's "share my number")


class Nav(StrEnum):
    """The keys that move about a conversation on every step, whatever the channel (a channel
    with buttons sends them as a keypad would)."""

    MAIN = "00"  # the main menu
    BACK = "0"  # the previous step (on a confirmation: cancel)
    MORE = "98"  # the next page of options


@dataclass(frozen=True, slots=True)
class Turn:
    channel: str  # the declared channel's name (core/conversation/channel.py)
    session_id: str  # the channel's session (a USSD session id, a Telegram chat)
    user_ref: str  # who is talking: an E.164 number, a Telegram user id
    input: str  # the last input only; a dialect strips Africa's Talking's path
    is_new: bool = False
    # The gateway's own number of this hop in the session (Hubtel's ``Sequence``), where it sends
    # one: a hop whose number was already applied is a retry, answered with the current screen.
    hop: int | None = None
    # The options the user chose from, as :meth:`Screen.tag` (a Telegram button carries it): a
    # choice made on a list that has changed since is asked again, not applied to the new list.
    shown: str | None = None
    # A contact shared with the channel's contact button (``input`` is its number): True when the
    # channel proves it is the user's own (Telegram: the contact's user id is the sender's), False
    # when it is someone else's; None when the turn carries no contact (a typed number proves
    # nothing).
    contact: bool | None = None
    # A channel's command that opens a menu entry at once (Telegram's ``/statement``: a trigger
    # the role's flow takes from its main menu, shown there or not); ``input`` then answers the
    # entry's first step.
    entry: str | None = None


@dataclass(frozen=True, slots=True)
class Option:
    label: str
    value: str


@dataclass(frozen=True, slots=True)
class Document:
    """A file sent with a screen (its text is the caption), on a channel that can carry one."""

    filename: str
    content: bytes


@dataclass(frozen=True, slots=True)
class Screen:
    text: str
    options: tuple[Option, ...] = field(default=())
    expects: Expects = Expects.CHOICE
    final: bool = False  # the session ends with this screen
    page: int = 0  # which page of the options a channel that paginates shows (USSD: 98 More)
    # The input answered was a PIN: a channel that keeps a history (Telegram) deletes it.
    erase_input: bool = False
    # ``0`` goes back and ``00`` to the main menu here (not the main menu, not a confirmation,
    # where 0 cancels): a channel without buttons may say so (USSD, when it fits).
    nav: bool = False
    document: Document | None = None

    def tag(self) -> str:
        """A short fingerprint of the options (their values, in order)."""
        values = "\x1f".join(option.value for option in self.options)
        return hashlib.blake2b(values.encode(), digest_size=3).hexdigest()


@dataclass(frozen=True, slots=True)
class Style:
    """How a channel's gateway shows screens (what the channel is: its ``Channel``).

    ``pages``: how many pages a screen takes there (USSD: by the gateway's character limit).
    ``last_input``: for a gateway that sends the whole path of inputs (Africa's Talking), how to
    take the newest input from it given the previous hop's path, which the session keeps as its
    length and keyed digest (the path holds PINs: sessions.PathKeeper).
    """

    pages: Callable[[Screen], int] = lambda _screen: 1
    last_input: Callable[[str, SeenPath | None], str] | None = None


PLAIN = Style()
