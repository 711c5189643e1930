"""API keys for the REST API: made (shown once), listed, revoked, and checked on every request.

Invariant: the key exists in the clear only in the value :func:`create` returns; what is stored is
its SHA-256 and its first 12 characters (the prefix, by which a key is named in lists, logs and
support calls). A key acts for its own party only (api/ narrows further to its scopes); a party's
keys are made and revoked by the party itself or by whoever may manage it (core/services/chain.py).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.context import Core
from core.errors import InputError, NotFound, Refused
from core.models import ApiKey, Party, PartyStatus, Role, Scope
from core.models.types import utcnow
from core.services.audit import Actor, record
from core.services.chain import get_party, may_manage

KEY_PREFIX = "agk_"
KEY_BYTES = 32  # 256 bits of randomness: 43 URL-safe characters after the prefix
SHOWN_CHARS = 12  # "agk_" + 8: enough to tell a party's keys apart, nothing to guess from
MAX_KEYS = 20  # live keys per party: one per system or till, not one per request

key_t = ApiKey.__table__  # type: ignore[attr-defined]
party_t = Party.__table__  # type: ignore[attr-defined]

# Named bind parameters: Lookups runs it on its own asyncpg connections (core/db.py).
_BY_HASH = (
    select(
        key_t.c.id,
        key_t.c.prefix,
        key_t.c.scopes,
        party_t.c.id,
        party_t.c.role,
        party_t.c.status,
        party_t.c.parent_id,
    )
    .join(party_t, party_t.c.id == key_t.c.party_id)
    .where(key_t.c.secret_hash == bindparam("secret_hash"), key_t.c.revoked_at.is_(None))
)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_scopes(text: str | Iterable[str]) -> frozenset[Scope]:
    """``"read,topup"`` (or the words) as scopes; an unknown word is an InputError naming it."""
    words = text.split(",") if isinstance(text, str) else list(text)
    found: set[Scope] = set()
    for word in (w.strip().lower() for w in words):
        if not word:
            continue
        try:
            found.add(Scope(word))
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise InputError(reason=f"unknown scope {word!r} (one of {known})") from None
    if not found:
        raise InputError(reason="a key needs at least one scope")
    return frozenset(found)


def scopes_text(scopes: Iterable[Scope]) -> str:
    return ",".join(sorted(s.value for s in scopes))


@dataclass(frozen=True, slots=True)
class Created:
    key: str  # the secret: shown once to whoever made it, never stored or logged
    row: ApiKey


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request's key acts for: its party and what the key may do."""

    key_id: int
    prefix: str
    scopes: frozenset[Scope]
    party_id: int
    role: Role
    active: bool
    parent_id: int | None


async def create(
    core: Core, *, actor: Actor, party_ref: str | int, scopes: Iterable[Scope], label: str = ""
) -> Created:
    chosen = frozenset(scopes)
    if not chosen:
        raise InputError(reason="a key needs at least one scope")
    label = " ".join(label.split())[:60]
    async with core.transaction() as session:
        party = await get_party(session, party_ref, country=core.settings.country, lock=True)
        await _may_act(session, actor, party)
        if party.role == Role.PLATFORM:
            raise InputError(reason="the platform has no API keys; use the command line")
        live = await session.execute(
            select(key_t.c.id).where(key_t.c.party_id == party.id, key_t.c.revoked_at.is_(None))
        )
        if len(live.all()) >= MAX_KEYS:
            raise InputError(reason=f"{party.label} has {MAX_KEYS} live keys: revoke one first")
        key = KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)
        row = ApiKey(
            party_id=party.id or 0,
            prefix=key[:SHOWN_CHARS],
            secret_hash=digest(key),
            scopes=scopes_text(chosen),
            label=label,
            created_by=actor.label[:60],
        )
        session.add(row)
        try:
            await session.flush()
        except IntegrityError:  # a prefix drawn twice (1 in 2^48): the caller asks again
            raise InputError(reason="the key could not be made; try again") from None
        await record(
            session,
            actor=actor,
            action="apikey.create",
            subject_party_id=party.id,
            reference=row.prefix,
            details={"scopes": row.scopes},
        )
    return Created(key=key, row=row)


async def list_keys(
    core: Core, *, actor: Actor, party_ref: str | int, revoked: bool = False
) -> list[ApiKey]:
    async with core.sessions() as session:
        party = await get_party(session, party_ref, country=core.settings.country)
        await _may_act(session, actor, party)
        query = select(ApiKey).where(col(ApiKey.party_id) == party.id).order_by(col(ApiKey.id))
        if not revoked:
            query = query.where(col(ApiKey.revoked_at).is_(None))
        return list((await session.execute(query)).scalars())


async def revoke(core: Core, *, actor: Actor, prefix: str) -> ApiKey:
    """Revoke the key named by its prefix (or the whole key); revoking it again changes nothing."""
    prefix = prefix.strip()[:SHOWN_CHARS]
    async with core.transaction() as session:
        row = (await session.execute(select(ApiKey).where(col(ApiKey.prefix) == prefix))).scalar()
        if row is None:
            raise NotFound(kind="API key", key=prefix)
        party = await session.get(Party, row.party_id)
        assert party is not None  # a foreign key
        try:
            await _may_act(session, actor, party)
        except NotFound:
            raise NotFound(kind="API key", key=prefix) from None
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            await session.execute(
                update(key_t).where(key_t.c.id == row.id).values(revoked_at=row.revoked_at)
            )
            await record(
                session,
                actor=actor,
                action="apikey.revoke",
                subject_party_id=row.party_id,
                reference=row.prefix,
            )
    return row


async def authenticate(core: Core, key: str) -> Principal | None:
    """The principal a presented key acts for, or None (unknown, malformed or revoked)."""
    if not key.startswith(KEY_PREFIX) or len(key) > 128:
        return None
    row = await core.lookups.first(_BY_HASH, secret_hash=digest(key))
    if row is None:
        return None
    key_id, prefix, scopes, party_id, role, status, parent_id = row
    return Principal(
        key_id=key_id,
        prefix=prefix,
        scopes=frozenset(Scope(s) for s in scopes.split(",") if s),
        party_id=party_id,
        role=Role(role),
        active=status == PartyStatus.ACTIVE,
        parent_id=parent_id,
    )


async def _may_act(session: AsyncSession, actor: Actor, party: Party) -> None:
    """The party itself, or whoever may manage it; anyone else is told it does not exist."""
    if actor.is_admin or actor.party_id == party.id:
        return
    try:
        await may_manage(session, actor, party)
    except Refused:
        raise NotFound(kind="party", key=str(party.id)) from None
