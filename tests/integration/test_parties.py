"""Parties on real databases: registration rules, PIN lockout, audit, no PIN in clear anywhere."""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy import select, text

from core.context import Core
from core.errors import (
    AlreadyExists,
    InvalidMsisdn,
    NotPermitted,
    PartyInactive,
    PinLocked,
    WrongPin,
)
from core.models import AuditEvent, PartyStatus, Role
from core.security import Pin
from core.services import parties
from core.services.audit import Actor
from tests.helpers import ADMIN, PIN, chain


async def test_local_formats_are_stored_as_e164_and_numbers_are_unique(core: Core) -> None:
    distributor, [shop] = await chain(core)
    assert shop.msisdn == "+254711000001"
    async with core.sessions() as session:
        found = await parties.get_party(session, "0711 000-001", country="KE")
    assert found.id == shop.id
    with pytest.raises(AlreadyExists):
        await parties.add_party(
            core,
            actor=ADMIN,
            role=Role.RETAILER,
            name="Copy",
            msisdn="0711000001",
            parent_ref=distributor.msisdn,
        )
    with pytest.raises(InvalidMsisdn):
        await parties.add_party(
            core,
            actor=ADMIN,
            role=Role.RETAILER,
            name="Bad",
            msisdn="12345",
            parent_ref=distributor.msisdn,
        )


async def test_hierarchy_rules(core: Core) -> None:
    distributor, [shop] = await chain(core)
    with pytest.raises(NotPermitted):  # a retailer cannot sit under a retailer
        await parties.add_party(
            core,
            actor=ADMIN,
            role=Role.RETAILER,
            name="Sub",
            msisdn="+254711000099",
            parent_ref=shop.msisdn,
        )
    sub = await parties.add_party(
        core,
        actor=ADMIN,
        role=Role.DISTRIBUTOR,
        name="Sub-distributor",
        msisdn="+254711000098",
        parent_ref=distributor.msisdn,
    )
    assert sub.parent_id == distributor.id
    with pytest.raises(AlreadyExists):
        await parties.add_party(
            core, actor=ADMIN, role=Role.PLATFORM, name="Second", msisdn="+254711000097"
        )


async def test_three_wrong_pins_lock_until_the_distributor_unlocks(core: Core) -> None:
    distributor, [shop] = await chain(core)
    assert shop.id and distributor.id
    with pytest.raises(WrongPin) as first:
        await parties.check_pin(core, party_id=shop.id, pin=Pin("9999"), channel="ussd")
    assert first.value.attempts_left == 2
    with pytest.raises(WrongPin):
        await parties.check_pin(core, party_id=shop.id, pin=Pin("9998"), channel="ussd")
    with pytest.raises(PinLocked) as locked:
        await parties.check_pin(core, party_id=shop.id, pin=Pin("9997"), channel="ussd")
    assert distributor.msisdn in str(locked.value)
    with pytest.raises(PinLocked):  # even the right PIN, until unlocked
        await parties.check_pin(core, party_id=shop.id, pin=Pin(PIN), channel="ussd")

    stranger = Actor.party(shop.id, "ussd")  # a retailer cannot unlock itself
    with pytest.raises(NotPermitted):
        await parties.unlock(core, actor=stranger, ref=shop.msisdn)
    await parties.unlock(core, actor=Actor.party(distributor.id, "ussd"), ref=shop.msisdn)
    ok = await parties.check_pin(core, party_id=shop.id, pin=Pin(PIN), channel="ussd")
    assert ok.id == shop.id


async def test_concurrent_wrong_pins_cannot_slip_past_the_lockout(core: Core) -> None:
    _, [shop] = await chain(core)
    assert shop.id
    results = await asyncio.gather(
        *(
            parties.check_pin(core, party_id=shop.id, pin=Pin("0000"), channel="ussd")
            for _ in range(10)
        ),
        return_exceptions=True,
    )
    # Judged one at a time: two "wrong, N left", then the lock; no guess is evaluated after it.
    assert sum(isinstance(r, WrongPin) for r in results) == 2
    assert sum(isinstance(r, PinLocked) for r in results) == 8
    async with core.sessions() as session:
        row = (
            await session.execute(
                text("SELECT pin_failed_attempts, pin_locked FROM party WHERE id = :id"),
                {"id": shop.id},
            )
        ).one()
    assert row[0] == 3 and row[1]


async def test_suspended_party_is_refused(core: Core) -> None:
    _, [shop] = await chain(core)
    assert shop.id
    await parties.set_status(core, actor=ADMIN, ref=shop.msisdn, status=PartyStatus.SUSPENDED)
    with pytest.raises(PartyInactive):
        await parties.check_pin(core, party_id=shop.id, pin=Pin(PIN), channel="ussd")


async def test_pin_never_in_clear_in_database_audit_or_logs(
    core: Core, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "864209"
    _, [shop] = await chain(core)
    await parties.set_pin(core, actor=ADMIN, ref=shop.msisdn, pin=Pin(secret))
    assert shop.id
    with pytest.raises(WrongPin) as wrong:
        await parties.check_pin(core, party_id=shop.id, pin=Pin("864201"), channel="ussd")
    assert secret not in repr(wrong.value) and "864201" not in str(wrong.value)
    assert repr(Pin(secret)) == "Pin(****)"
    async with core.sessions() as session:
        for table in ("party", "audit_event"):
            rows = (await session.execute(text(f"SELECT * FROM {table}"))).all()
            assert rows
            assert all(secret not in str(row) for row in rows)
        events = (await session.execute(select(AuditEvent.action))).scalars().all()
    assert {"party.add", "party.set_pin", "catalog.load"} <= set(events)
    assert secret not in caplog.text


async def test_changing_ones_own_pin_needs_the_current_one(core: Core) -> None:
    distributor, [shop] = await chain(core)
    assert shop.id and distributor.id
    me = Actor.party(shop.id, "ussd")
    with pytest.raises(NotPermitted):
        await parties.set_pin(core, actor=me, ref=shop.msisdn, pin=Pin("2468"))
    with pytest.raises(WrongPin):
        await parties.set_pin(core, actor=me, ref=shop.msisdn, pin=Pin("2468"), current=Pin("0000"))
    await parties.set_pin(core, actor=me, ref=shop.msisdn, pin=Pin("2468"), current=Pin(PIN))
    assert await parties.check_pin(core, party_id=shop.id, pin=Pin("2468"), channel="ussd")
    # A suspended distributor cannot manage its retailers.
    await parties.set_status(
        core, actor=ADMIN, ref=distributor.msisdn, status=PartyStatus.SUSPENDED
    )
    with pytest.raises(PartyInactive):
        await parties.unlock(core, actor=Actor.party(distributor.id, "ussd"), ref=shop.msisdn)
