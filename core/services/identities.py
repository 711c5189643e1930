"""Identities on channels: who a party is on Telegram (and later WhatsApp, an API key, ...).

Invariant: an identity (channel, external id) acts for at most one party, and a party has at most
one identity per channel (primary key and a unique pair in ``party_identity``); a new link replaces
the party's earlier identity on that channel. Linking needs proof (an invite code, phone + PIN):
that is the caller's business (core/services/links.py, the link flow); this module only records
the outcome, audited. A channel adds identities, never a column of ``Party``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ScalarSelect, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Core
from core.errors import AlreadyExists
from core.models import Party, PartyIdentity
from core.services.audit import Actor, record
from core.services.parties import ensure_active, get_party

identity_t = PartyIdentity.__table__  # type: ignore[attr-defined]
party_t = Party.__table__  # type: ignore[attr-defined]


async def link(core: Core, *, party_id: int, channel: str, external_id: str, how: str) -> None:
    """Make ``external_id`` on ``channel`` act for ``party_id`` (replacing the party's earlier
    identity there), unblocked. AlreadyExists when it already acts for another party."""
    async with core.transaction() as session:
        holder = await _holder(session, channel, external_id)
        if holder is not None and holder != party_id:
            raise AlreadyExists(kind=f"{channel} link", key=_masked(external_id))
        party = await get_party(session, party_id, country=core.settings.country, lock=True)
        ensure_active(party)
        await session.execute(
            delete(identity_t).where(
                identity_t.c.party_id == party_id, identity_t.c.channel == channel
            )
        )
        await session.execute(
            insert(identity_t).values(
                channel=channel, external_id=external_id, party_id=party_id, blocked=False
            )
        )
        await record(
            session,
            actor=Actor.party(party_id, channel),
            action=f"{channel}.link",
            subject_party_id=party_id,
            details={"how": how},
        )


async def unlink(core: Core, *, channel: str, external_id: str) -> None:
    """``external_id`` on ``channel`` acts for nobody any more (nothing if it did not)."""
    async with core.transaction() as session:
        party_id = (
            await session.execute(
                delete(identity_t)
                .where(identity_t.c.channel == channel, identity_t.c.external_id == external_id)
                .returning(identity_t.c.party_id)
            )
        ).scalar()
        if party_id is not None:
            await record(
                session,
                actor=Actor.party(party_id, channel),
                action=f"{channel}.unlink",
                subject_party_id=party_id,
            )


async def party_for(core: Core, *, channel: str, external_id: str) -> int | None:
    """The id of the party ``external_id`` on ``channel`` acts for, or None."""
    async with core.sessions() as session:
        return await _holder(session, channel, external_id)


async def address(session: AsyncSession, *, party_id: int, channel: str) -> str | None:
    """Where a message to ``party_id`` goes on ``channel``: its identity there, unless none or
    the channel refuses our messages to it (blocked)."""
    query = select(identity_t.c.external_id).where(
        identity_t.c.party_id == party_id,
        identity_t.c.channel == channel,
        identity_t.c.blocked.is_(False),
    )
    return (await session.execute(query)).scalar()


def address_column(channel: str, party_id: Any = party_t.c.id) -> ScalarSelect[Any]:
    """:func:`address` as a column of a query over parties (correlated on ``party_id``)."""
    return (
        select(identity_t.c.external_id)
        .where(
            identity_t.c.party_id == party_id,
            identity_t.c.channel == channel,
            identity_t.c.blocked.is_(False),
        )
        .scalar_subquery()
    )


async def mark_blocked(core: Core, *, channel: str, party_ids: Sequence[int]) -> None:
    """``channel`` refused our messages to these parties' identities (the user blocked the bot):
    later messages go another way until :func:`unblocked`."""
    async with core.transaction() as session:
        await session.execute(
            update(identity_t)
            .where(identity_t.c.channel == channel, identity_t.c.party_id.in_(list(party_ids)))
            .values(blocked=True)
        )


async def unblocked(core: Core, *, channel: str, external_id: str) -> None:
    """The user wrote to us on ``channel`` again: messages may go there again."""
    async with core.transaction() as session:
        await session.execute(
            update(identity_t)
            .where(
                identity_t.c.channel == channel,
                identity_t.c.external_id == external_id,
                identity_t.c.blocked,
            )
            .values(blocked=False)
        )


async def _holder(session: AsyncSession, channel: str, external_id: str) -> int | None:
    query = select(identity_t.c.party_id).where(
        identity_t.c.channel == channel, identity_t.c.external_id == external_id
    )
    return (await session.execute(query)).scalar()


def _masked(external_id: str) -> str:
    """Enough of an identity to tell two apart in an error, not the whole of it (it may be a
    phone number)."""
    return f"…{external_id[-3:]}" if len(external_id) > 3 else "…"
