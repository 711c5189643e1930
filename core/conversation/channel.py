"""What a channel declares about itself, once: the core reads this and names no channel.

Each channel adapter (``ussd/``, ``bot/``) declares one :class:`Channel` beside its code; the app
(``airgate/server.py``) composes the declared channels into the engine and the session store. A
new channel (WhatsApp, say) is a new folder with its declaration and one line there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from core.settings import Settings


class Identifies(StrEnum):
    """How a channel tells who is talking (the turn's ``user_ref``)."""

    # The caller's phone number (E.164), as the party is registered: USSD. A number nobody
    # registered is told so; there is nothing to link.
    NUMBER = "number"
    # An account of the channel's own (a Telegram user id), linked to a party as an identity on
    # that channel. It can be unlinked or linked to another party while its session lives, so it
    # is asked again on every turn; an account nobody linked is offered the link flow.
    ACCOUNT = "account"


class Shows(StrEnum):
    """What a channel's screens can show beyond text and numbered options."""

    CONTACT = "contact"  # a button sharing the user's own phone number, proven by the channel
    DOCUMENT = "document"  # a file sent with the screen (a statement as CSV)


@dataclass(frozen=True, slots=True)
class Channel:
    name: str  # the turn's ``channel``, the session keys', the audit trail's and a top-up's
    session_ttl_s: Callable[[Settings], int]  # which setting says how long a session lives
    identifies: Identifies
    shows: frozenset[Shows] = field(default_factory=frozenset)
    # A chat outlives its journeys (Telegram): a new turn or input after a final screen starts a
    # new journey in the same session. On USSD the gateway ends the session, and a hop after the
    # end is a retry, answered with the final screen again.
    restart_after_end: bool = False

    def can(self, feature: Shows) -> bool:
        return feature in self.shows


def by_name(channels: Iterable[Channel]) -> dict[str, Channel]:
    """The declared channels by name; two declarations of one name are a composition bug."""
    named: dict[str, Channel] = {}
    for channel in channels:
        if channel.name in named:
            raise ValueError(f"channel {channel.name!r} is declared twice")
        named[channel.name] = channel
    return named
