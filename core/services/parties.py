"""Parties: registration and their own settings (status, language, limits), audited.

The rest of a party's story lives beside this module and is re-exported here, so that callers
keep writing ``parties.X``: finding a party and who may manage whom (core/services/chain.py),
PINs and the lockout (core/services/pins.py), who is calling (core/services/callers.py), its
identities on channels (core/services/identities.py).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.context import Core
from core.errors import AlreadyExists, NotFound, NotPermitted
from core.models import Party, PartyStatus, Role
from core.msisdn import normalize
from core.security import Pin
from core.services.audit import Actor, record
from core.services.callers import Who, identify, who
from core.services.chain import (
    ALLOWED_PARENTS,
    LANGUAGES,
    check_parent,
    ensure_active,
    get_party,
    may_manage,
    platform,
)
from core.services.pins import check_pin, set_pin, unlock, unlocker_of

__all__ = [
    "ALLOWED_PARENTS",
    "LANGUAGES",
    "Who",
    "add_party",
    "change",
    "check_pin",
    "ensure_active",
    "get_party",
    "identify",
    "list_parties",
    "may_manage",
    "platform",
    "set_language",
    "set_pin",
    "set_status",
    "unlock",
    "unlocker_of",
    "who",
]

party_t = Party.__table__  # type: ignore[attr-defined]


async def add_party(
    core: Core,
    *,
    actor: Actor,
    role: Role,
    name: str,
    msisdn: str,
    parent_ref: str | int | None = None,
    language: str = "en",
    pin: Pin | None = None,
    status: PartyStatus = PartyStatus.ACTIVE,
) -> Party:
    country = core.settings.country
    e164 = normalize(msisdn, country=country)
    if language not in LANGUAGES:
        raise NotFound(kind="language", key=language)
    name = " ".join(name.split())
    if not name:
        raise NotPermitted(reason="a party needs a name")
    async with core.transaction() as session:
        parent = (
            None if parent_ref is None else await get_party(session, parent_ref, country=country)
        )
        check_parent(role, parent)
        if role is Role.PLATFORM and await _count(session, role=Role.PLATFORM):
            raise AlreadyExists(kind="platform", key="platform")
        party = Party(
            role=role,
            parent_id=parent.id if parent else None,
            name=name,
            msisdn=e164,
            status=status,
            language=language,
            pin_hash=core.pins.hash(pin) if pin else None,
        )
        session.add(party)
        try:
            await session.flush()
        except IntegrityError:
            raise AlreadyExists(kind="party with number", key=e164) from None
        await record(
            session,
            actor=actor,
            action="party.add",
            subject_party_id=party.id,
            details={"role": role.value, "parent_id": party.parent_id},
        )
    return party


async def _count(session: AsyncSession, *, role: Role) -> int:
    return int(
        (await session.execute(select(func.count()).where(party_t.c.role == role))).scalar() or 0
    )


async def list_parties(
    session: AsyncSession,
    *,
    role: Role | None = None,
    parent_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[Party]:
    query = select(Party).order_by(Party.id).limit(limit).offset(offset)  # type: ignore[arg-type]
    if role is not None:
        query = query.where(col(Party.role) == role)
    if parent_id is not None:
        query = query.where(col(Party.parent_id) == parent_id)
    return list((await session.execute(query)).scalars())


async def change(
    core: Core, *, actor: Actor, ref: str | int, field: str, value: object, action: str
) -> Party:
    """Set one of a party's own settings (``field``) to ``value`` if ``actor`` may manage it,
    audited as ``action`` with the value before and after."""
    async with core.transaction() as session:
        party = await get_party(session, ref, country=core.settings.country, lock=True)
        await may_manage(session, actor, party)
        previous = getattr(party, field)
        setattr(party, field, value)
        await record(
            session,
            actor=actor,
            action=action,
            subject_party_id=party.id,
            details={"from": previous, "to": value},
        )
    return party


async def set_status(core: Core, *, actor: Actor, ref: str | int, status: PartyStatus) -> Party:
    async with core.transaction() as session:
        party = await get_party(session, ref, country=core.settings.country)
        await may_manage(session, actor, party)
        previous, party.status = party.status, status
        await record(
            session,
            actor=actor,
            action=f"party.{status.value}",
            subject_party_id=party.id,
            details={"from": previous},
        )
    return party


async def set_language(core: Core, *, actor: Actor, party_id: int, language: str) -> None:
    if language not in LANGUAGES:
        raise NotFound(kind="language", key=language)
    async with core.transaction() as session:
        party = await session.get(Party, party_id)
        if party is None:
            raise NotFound(kind="party", key=str(party_id))
        if actor.party_id not in (None, party_id):
            await may_manage(session, actor, party)
        previous, party.language = party.language, language
        await record(
            session,
            actor=actor,
            action="party.language",
            subject_party_id=party_id,
            details={"from": previous, "to": language},
        )
