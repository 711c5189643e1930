"""The chain of parties: finding a party, and who may manage whom.

Invariant: admins manage anyone; a party manages only the parties below it, and only while it is
active itself. A party sits only under a parent of a role :data:`ALLOWED_PARENTS` allows.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.errors import NotFound, NotPermitted, PartyInactive
from core.models import Party, PartyStatus, Role
from core.msisdn import normalize
from core.services.audit import Actor

# Which role may sit under which parent role.
ALLOWED_PARENTS: dict[Role, tuple[Role, ...]] = {
    Role.PLATFORM: (),
    Role.DISTRIBUTOR: (Role.PLATFORM, Role.DISTRIBUTOR),
    Role.RETAILER: (Role.DISTRIBUTOR,),
}
LANGUAGES = ("en", "fr", "sw")


async def get_party(
    session: AsyncSession, ref: str | int, *, country: str, lock: bool = False
) -> Party:
    """A party by id (``12`` or ``"#12"``) or by MSISDN in any accepted format.

    ``lock``: hold its row (FOR NO KEY UPDATE) until the transaction ends, and read it fresh.
    """
    digits = str(ref).lstrip("#")
    if isinstance(ref, int) or (digits.isascii() and digits.isdigit() and len(digits) < 9):
        where = col(Party.id) == int(digits)
    else:
        where = col(Party.msisdn) == normalize(str(ref), country=country)
    query = select(Party).where(where)
    if lock:
        query = query.with_for_update(key_share=True).execution_options(populate_existing=True)
    party = (await session.execute(query)).scalar()
    if party is None:
        raise NotFound(kind="party", key=str(ref))
    return party


async def platform(session: AsyncSession) -> Party:
    party = (await session.execute(select(Party).where(col(Party.role) == Role.PLATFORM))).scalar()
    if party is None:
        raise NotFound(kind="party", key="platform (run `airgate seed --demo` or add one)")
    return party


def check_parent(role: Role, parent: Party | None) -> None:
    allowed = ALLOWED_PARENTS[role]
    if not allowed and parent is None:
        return
    if parent is None or parent.role not in allowed:
        wanted = " or ".join(r.value for r in allowed) or "no parent"
        raise NotPermitted(reason=f"a {role.value} sits under a {wanted}")


def ensure_active(party: Party) -> None:
    if party.status != PartyStatus.ACTIVE:
        raise PartyInactive(party=party.label, status=party.status)


async def may_manage(session: AsyncSession, actor: Actor, party: Party) -> None:
    """Admins manage anyone; a party manages the parties below it."""
    if actor.is_admin:
        return
    acting = await session.get(Party, actor.party_id)
    if acting is None:
        raise NotPermitted(reason="unknown party")
    ensure_active(acting)
    parent_id = party.parent_id
    while parent_id is not None:
        if parent_id == actor.party_id:
            return
        parent = await session.get(Party, parent_id)
        parent_id = parent.parent_id if parent else None
    raise NotPermitted(reason=f"{party.label} is not one of your parties")
