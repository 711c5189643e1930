"""Automatic alerts: a party's stock of an operator falling below its threshold.

Invariant: a party is told once per crossing. A crossing is a posting that took the balance of the
party's main ``AIRTIME:{operator}`` account from at or above its threshold to below it
(:meth:`~core.ledger.postings.Move.fell_below`). The ledger's guarded UPDATE applies postings to
one row one after another and returns the balance each left, so of any number of concurrent
debits exactly one crosses; its message is written to the notification outbox in that same
transaction (a unique key), so it is owed exactly when the debit commits. No flag table: the
balance itself is the state, and a re-stock above the threshold re-arms the alert by itself
(docs/ALERTS.md).

The threshold is the party's own ``low_stock_minor``, else ``AIRGATE_LOW_STOCK_MINOR``; the
distributor's low-stock list (core/services/stock/positions.py ``low_stock``) applies the same rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Core
from core.errors import InvalidAmount
from core.i18n import t
from core.jobs.queue import JobQueue
from core.ledger import AccountRef, Posting
from core.models import AccountKind, Operator, Party, Role
from core.money import airtime_asset, format_minor
from core.services import identities
from core.services.audit import Actor
from core.services.notify import TELEGRAM, Message, add_owed, route
from core.services.parties import change


@dataclass(frozen=True, slots=True)
class Holder:
    """Whose stock it is, as far as an alert needs to know."""

    party_id: int
    role: str
    msisdn: str
    language: str
    telegram_user_id: int | str | None  # its address on Telegram (core/services/identities.py)
    low_stock_minor: int | None  # its own threshold; None: the platform default

    @classmethod
    async def of(cls, session: AsyncSession, party: Party) -> Holder:
        party_id = party.id or 0
        return cls(
            party_id,
            party.role,
            party.msisdn,
            party.language,
            await identities.address(session, party_id=party_id, channel=TELEGRAM),
            party.low_stock_minor,
        )


def threshold_of(core: Core, own_minor: int | None) -> int:
    return core.settings.low_stock_minor if own_minor is None else own_minor


def to_party(
    core: Core,
    *,
    party_id: int,
    msisdn: str,
    telegram_user_id: int | str | None,
    key: str,
    text: str,
) -> Message:
    """A message to a party on its own channel (Telegram when linked and the bot is on)."""
    via, recipient = route(
        telegram_on=bool(core.settings.telegram_token),
        telegram_user_id=telegram_user_id,
        msisdn=msisdn,
    )
    return Message(key=key, party_id=party_id, via=via, recipient=recipient, text=text)


async def owe_low_stock(
    core: Core,
    session: AsyncSession,
    *,
    holder: Holder,
    posting: Posting,
    operator: Operator,
    tag: str,
) -> list[Message]:
    """The alert ``posting`` owes ``holder`` (written to the outbox in the caller's transaction),
    if it took the holder's stock of ``operator`` below its threshold; else nothing.

    ``tag`` names the posting (a reservation or transfer id): the alert's key is unique per
    crossing, so writing it twice is a bug the outbox refuses.
    """
    if holder.role == Role.PLATFORM:  # the operator's stock: the console's business, not a phone's
        return []
    asset = airtime_asset(operator.code)
    move = posting.moves.get(AccountRef(AccountKind.MAIN, asset, holder.party_id))
    limit_minor = threshold_of(core, holder.low_stock_minor)
    if move is None or not move.fell_below(limit_minor):
        return []
    text_key = "alert.low_stock" if holder.role == Role.RETAILER else "alert.low_stock_own"
    text = t(
        holder.language,
        text_key,
        operator=operator.name,
        stock=format_minor(move.new_minor, operator.currency),
        limit=format_minor(limit_minor, operator.currency),
    )
    message = to_party(
        core,
        party_id=holder.party_id,
        msisdn=holder.msisdn,
        telegram_user_id=holder.telegram_user_id,
        key=f"low:{holder.party_id}:{asset}:{tag}",
        text=text,
    )
    return await add_owed(session, [message])


async def send_owed(queue: JobQueue | None, messages: Sequence[Message]) -> None:
    """After the commit: a notify job per owed message. Without a queue (or with Redis away) the
    sweeper sends them once they are ``sweeper_stale_s`` old."""
    if queue is None:
        return
    for message in messages:
        await queue.notify(message.id or 0, attempts=0)


async def set_threshold(
    core: Core, *, actor: Actor, ref: str | int, threshold_minor: int | None
) -> Party:
    """Set a party's own low-stock threshold (None: back to the platform default)."""
    if threshold_minor is not None and threshold_minor < 0:
        raise InvalidAmount(reason="a low-stock threshold cannot be negative")
    return await change(
        core,
        actor=actor,
        ref=ref,
        field="low_stock_minor",
        value=threshold_minor,
        action="party.low_stock",
    )
