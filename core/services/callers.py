"""Who is calling: the party behind a channel's user, as a conversation starts.

On the number channel (USSD) the user is the E.164 number on the party row; on any other channel
it is an identity in ``party_identity`` (core/services/identities.py). Never cached: a party
suspended, locked or relinked is seen on its next dial.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import bindparam, select

from core.context import Core
from core.errors import InvalidMsisdn, NotFound
from core.models import Party, PartyIdentity
from core.services.chain import get_party
from core.stores import database_errors

party_t = Party.__table__  # type: ignore[attr-defined]
identity_t = PartyIdentity.__table__  # type: ignore[attr-defined]


class Who(NamedTuple):
    """Who is talking, as a conversation starts: what the engine needs, nothing more."""

    id: int
    role: str
    name: str
    status: str
    language: str
    pin_locked: bool
    parent_id: int | None

    @property
    def label(self) -> str:
        return self.name


_WHO_COLUMNS = (
    party_t.c.id,
    party_t.c.role,
    party_t.c.name,
    party_t.c.status,
    party_t.c.language,
    party_t.c.pin_locked,
    party_t.c.parent_id,
)
# Built once: who() is the first hop of every USSD session.
_BY_NUMBER = select(*_WHO_COLUMNS).where(party_t.c.msisdn == bindparam("ref"))
_BY_IDENTITY = (
    select(*_WHO_COLUMNS)
    .join(identity_t, identity_t.c.party_id == party_t.c.id)
    .where(
        identity_t.c.channel == bindparam("channel"),
        identity_t.c.external_id == bindparam("ref"),
    )
)


async def who(core: Core, *, user_ref: str, channel: str | None = None) -> Who | None:
    """:func:`identify` on the hot path: one prebuilt statement in one round trip, no transaction
    (:class:`core.db.Lookups`). ``channel``: the channel of accounts ``user_ref`` is an identity
    on; None for a channel of numbers (USSD), where ``user_ref`` is the party's own E.164 number
    (the gateway's, validated by the dialect). Which a channel is, its declaration says
    (core.conversation.channel.Identifies)."""
    if channel is None:
        row = await core.lookups.first(_BY_NUMBER, ref=user_ref)
    else:
        row = await core.lookups.first(_BY_IDENTITY, channel=channel, ref=user_ref)
    return None if row is None else Who(*row)


async def identify(core: Core, *, user_ref: str, channel: str | None = None) -> Party | None:
    """Who is talking, as a whole party: by the phone number (``channel`` None, as for
    :func:`who`), else by the channel's identity; None if nobody registered is."""
    async with database_errors(core.sessions()) as session:
        if channel is not None:
            query = (
                select(Party)
                .join(identity_t, identity_t.c.party_id == party_t.c.id)
                .where(identity_t.c.channel == channel, identity_t.c.external_id == user_ref)
            )
            return (await session.execute(query)).scalar()
        try:
            return await get_party(session, user_ref, country=core.settings.country)
        except (NotFound, InvalidMsisdn):
            return None
