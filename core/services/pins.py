"""PINs and the lockout.

Invariant: a PIN is only ever held as a :class:`core.security.Pin` and stored as its peppered
hash; checks of one party's PIN run one at a time (row lock), so concurrent guesses cannot slip
past the lockout, and a wrong try is committed even though the caller then sees an error.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Core
from core.errors import NotFound, NotPermitted, PinLocked, WrongPin
from core.models import Party, Role
from core.security import Pin
from core.services.audit import Actor, record
from core.services.chain import ensure_active, get_party, may_manage

party_t = Party.__table__  # type: ignore[attr-defined]


class _Placed(Protocol):
    """A party, or the engine's :class:`~core.services.callers.Who`: what finding its unlocker
    needs."""

    @property
    def parent_id(self) -> int | None: ...


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
    # The party's queue first (core/hot_rows.py): a burst of one retailer's confirmations waits
    # here, not as connections on its row, which its top-ups lock next.
    async with core.gates.turn(party_id), core.transaction() as session:
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


async def _unlocker(session: AsyncSession, party: _Placed) -> str:
    """Whom a locked party calls: its distributor (name and number), or AirGate support."""
    parent = await session.get(Party, party.parent_id) if party.parent_id else None
    if parent is None or parent.role == Role.PLATFORM:
        return "AirGate support"
    return parent.label


async def unlocker_of(core: Core, party: _Placed) -> str:
    async with core.sessions() as session:
        return await _unlocker(session, party)
