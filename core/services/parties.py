"""Parties: registration, status, PINs and the lockout.

Invariant: a PIN is only ever held as a :class:`core.security.Pin` and stored as its peppered
hash; checks of one party's PIN run one at a time (row lock), so concurrent guesses cannot slip
past the lockout, and a wrong try is committed even though the caller then sees an error.
"""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

from sqlalchemy import Select, bindparam, func, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.util import greenlet_spawn
from sqlmodel import col

from core.context import Core
from core.errors import (
    AlreadyExists,
    InvalidMsisdn,
    NotFound,
    NotPermitted,
    PartyInactive,
    PinLocked,
    WrongPin,
)
from core.ledger.pg_fast import _as_sqlalchemy_error
from core.models import Party, PartyStatus, Role
from core.msisdn import normalize
from core.security import Pin
from core.services.audit import Actor, record

party_t = Party.__table__  # type: ignore[attr-defined]

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
        _check_parent(role, parent)
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


def _check_parent(role: Role, parent: Party | None) -> None:
    allowed = ALLOWED_PARENTS[role]
    if not allowed and parent is None:
        return
    if parent is None or parent.role not in allowed:
        wanted = " or ".join(r.value for r in allowed) or "no parent"
        raise NotPermitted(reason=f"a {role.value} sits under a {wanted}")


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


async def set_pin(
    core: Core,
    *,
    actor: Actor,
    ref: str | int,
    pin: Pin | None = None,
    pin_hash: str | None = None,
    current: Pin | None = None,
) -> Party:
    """Set a new PIN (or its hash, made by ``core.pins``: a conversation keeps only the hash of
    the new PIN between hops); this also clears the failure count and any lock.

    A party changing its own PIN must give the current one (checked, and counted like any try),
    so a stolen phone cannot reset the PIN or lift the lockout.
    """
    if (pin is None) == (pin_hash is None):
        raise ValueError("give the new PIN or its hash")
    new_hash = pin_hash if pin is None else core.pins.hash(pin)
    if actor.party_id is not None:
        async with core.sessions() as session:
            target = await get_party(session, ref, country=core.settings.country)
        if target.id == actor.party_id:
            if current is None:
                raise NotPermitted(reason="give your current PIN to change it")
            await check_pin(core, party_id=actor.party_id, pin=current, channel=actor.channel)
    async with core.transaction() as session:
        party = await get_party(session, ref, country=core.settings.country, lock=True)
        if actor.party_id != party.id:
            await may_manage(session, actor, party)
        party.pin_hash = new_hash
        party.pin_failed_attempts = 0
        party.pin_locked = False
        await record(session, actor=actor, action="party.set_pin", subject_party_id=party.id)
    return party


async def unlock(core: Core, *, actor: Actor, ref: str | int) -> Party:
    async with core.transaction() as session:
        party = await get_party(session, ref, country=core.settings.country)
        await may_manage(session, actor, party)
        party.pin_failed_attempts = 0
        party.pin_locked = False
        await record(session, actor=actor, action="party.unlock", subject_party_id=party.id)
    return party


async def check_pin(core: Core, *, party_id: int, pin: Pin, channel: str) -> Party:
    """Return the party if ``pin`` is right; else count the try and raise WrongPin or PinLocked."""
    max_attempts = core.settings.pin_max_attempts
    async with core.transaction() as session:
        # Row lock: concurrent guesses are judged one after another, so none is evaluated after
        # the lock has landed (SQLite's BEGIN IMMEDIATE serialises them the same way).
        party = await session.get(Party, party_id, with_for_update={"key_share": True})
        if party is None:
            raise NotFound(kind="party", key=str(party_id))
        ensure_active(party)
        if party.pin_locked:
            raise PinLocked(party=party.label, unlocker=await _unlocker(session, party))
        if party.pin_hash and core.pins.verify(pin, party.pin_hash):
            if party.pin_failed_attempts:
                party.pin_failed_attempts = 0
            return party
        failed, locked = (
            await session.execute(
                update(party_t)
                .where(party_t.c.id == party_id)
                .values(
                    pin_failed_attempts=party_t.c.pin_failed_attempts + 1,
                    pin_locked=party_t.c.pin_failed_attempts + 1 >= max_attempts,
                )
                .returning(party_t.c.pin_failed_attempts, party_t.c.pin_locked)
            )
        ).one()
        # Each wrong try is audited (who, where, when; never the PIN), in the try's transaction.
        actor = Actor.party(party_id, channel)
        details = {"attempt": failed, "of": max_attempts}
        await record(
            session,
            actor=actor,
            action="party.pin_wrong",
            subject_party_id=party_id,
            details=details,
        )
        if locked:
            await record(session, actor=actor, action="party.pin_locked", subject_party_id=party_id)
            unlocker = await _unlocker(session, party)
    # Raised after the commit: the failed try must count even though the caller gets an error.
    if locked:
        raise PinLocked(party=party.label, unlocker=unlocker)
    raise WrongPin(attempts_left=max_attempts - failed)


async def _unlocker(session: AsyncSession, party: Party | Who) -> str:
    """Whom a locked party calls: its distributor (name and number), or AirGate support."""
    parent = await session.get(Party, party.parent_id) if party.parent_id else None
    if parent is None or parent.role == Role.PLATFORM:
        return "AirGate support"
    return parent.label


async def unlocker_of(core: Core, party: Party | Who) -> str:
    async with core.sessions() as session:
        return await _unlocker(session, party)


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
_WHO_BY_MSISDN = select(*_WHO_COLUMNS).where(party_t.c.msisdn == bindparam("ref"))
_WHO_BY_TELEGRAM = select(*_WHO_COLUMNS).where(party_t.c.telegram_user_id == bindparam("ref"))
# The same two lookups as asyncpg statements (PostgreSQL's fast path), from the same columns.
_WHO_SQL = f"SELECT {', '.join(c.name for c in _WHO_COLUMNS)} FROM {party_t.name} WHERE"
_WHO_PG_BY_MSISDN = f"{_WHO_SQL} {party_t.c.msisdn.name} = $1::varchar"
_WHO_PG_BY_TELEGRAM = f"{_WHO_SQL} {party_t.c.telegram_user_id.name} = $1::bigint"


async def who(core: Core, *, channel: str, user_ref: str) -> Who | None:
    """:func:`identify` on the hot path (the first hop of every USSD session): a prebuilt
    statement in one round trip, no transaction. ``user_ref`` is already E.164 (the gateway's
    number, validated by the dialect) or a Telegram user id.

    Never cached: a party suspended, locked or relinked is seen on its next dial. On PostgreSQL
    the statement runs on a pooled connection's asyncpg connection directly (:func:`_who_pg`)."""
    if channel == "telegram":
        ref: int | str = int(user_ref) if user_ref.isdigit() else -1
        query, pg_sql = _WHO_BY_TELEGRAM, _WHO_PG_BY_TELEGRAM
    else:
        ref, query, pg_sql = user_ref, _WHO_BY_MSISDN, _WHO_PG_BY_MSISDN
    if core.lookups is not None:
        return await _who_lookup(core, pg_sql, ref)
    return await _who_generic(core.engine, query, ref)


async def _who_lookup(core: Core, sql: str, ref: int | str) -> Who | None:
    """:func:`who` on PostgreSQL: on a connection of :class:`core.db.Lookups` when one is idle
    or can be opened, else (or if that one fails) on SQLAlchemy's pool (:func:`_who_pg`), which
    also raises what SQLAlchemy would for a database that is really away. A read, so asking
    again is safe."""
    lookups = core.lookups
    assert lookups is not None
    conn = lookups.take()
    if conn is None and lookups.can_open():
        try:
            conn = await lookups.open()
        except Exception:  # the pool's path below says what is wrong
            conn = None
    if conn is None:
        return await _who_pg(core.engine, sql, ref)
    try:
        row = await conn.fetchrow(sql, ref)
    except Exception:
        lookups.drop(conn)
        return await _who_pg(core.engine, sql, ref)
    except BaseException:  # cancelled halfway: the connection's state is unknown
        lookups.drop(conn)
        raise
    lookups.give_back(conn)
    return None if row is None else Who(*row)


async def _who_generic(engine: AsyncEngine, query: Select[Any], ref: int | str) -> Who | None:
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        row = (await autocommit.execute(query, {"ref": ref})).first()
    return None if row is None else Who(*row)


async def _who_pg(engine: AsyncEngine, sql: str, ref: int | str) -> Who | None:
    """:func:`who` on PostgreSQL: one prepared statement (asyncpg prepares it once per connection
    and caches it) on a connection checked out of the engine's pool, outside any transaction as
    on the AUTOCOMMIT connection of :func:`_who_generic`, without SQLAlchemy's ``Connection``
    around it: about half the CPU (docs/BENCHMARKS.md, "USSD journey"). Errors are raised as
    SQLAlchemy would raise them, and a lost connection invalidates the pool as SQLAlchemy does
    (every connection as old is replaced at its next checkout); tests/integration/
    test_parties.py fails if either stops working."""
    try:
        fairy = await engine.raw_connection()
    except engine.dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(
            None, None, exc, engine.dialect.loaded_dbapi.Error, dialect=engine.dialect
        ) from exc
    try:
        driver: Any = fairy.driver_connection  # asyncpg.Connection, in no transaction
        try:
            row = await driver.fetchrow(sql, ref)
        except Exception as exc:
            adapter = fairy.dbapi_connection
            error = _as_sqlalchemy_error(engine.dialect, adapter, sql, (ref,), exc)
            orig: Any = error.orig if isinstance(error, DBAPIError) else None
            lost = driver.is_closed() or (
                orig is not None and engine.dialect.is_disconnect(orig, adapter, None)
            )
            if lost:  # closing the connection is I/O: in a greenlet
                await greenlet_spawn(engine.sync_engine.pool._invalidate, fairy, exc)
            raise error from exc
    finally:
        await _check_in(engine, fairy)
    return None if row is None else Who(*row)


async def _check_in(engine: AsyncEngine, fairy: Any) -> None:
    """Back to the pool. A connection the pool keeps goes back without I/O (it ran no
    transaction: nothing to roll back), so nothing can cut that short. One the pool closes
    instead (an overflow connection) is I/O: in a greenlet, and shielded, so that a cancellation
    of this task cannot leave it half closed; ``asyncio.shield`` is a task of its own, two more
    turns of the loop, so only then (the first hop of a USSD session waits for them: "USSD
    journey" in docs/BENCHMARKS.md)."""
    pool: Any = engine.sync_engine.pool
    if pool.checkedin() < pool.size():
        await greenlet_spawn(fairy.close)
    else:
        await asyncio.shield(greenlet_spawn(fairy.close))


async def identify(core: Core, *, channel: str, user_ref: str) -> Party | None:
    """Who is talking: by Telegram user id on Telegram, by phone number elsewhere; None if
    nobody registered is."""
    async with core.sessions() as session:
        if channel == "telegram":
            query = select(Party).where(col(Party.telegram_user_id) == int(user_ref))
            return (await session.execute(query)).scalar()
        try:
            return await get_party(session, user_ref, country=core.settings.country)
        except (NotFound, InvalidMsisdn):
            return None


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
