"""Parties on real databases: registration rules, PIN lockout, audit, no PIN in clear anywhere."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import event, select, text

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
from core.services import links, parties
from core.services.audit import Actor
from tests.helpers import ADMIN, PIN, chain, eventually


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


async def test_each_wrong_pin_try_is_audited_with_party_channel_and_time(core: Core) -> None:
    _, [shop] = await chain(core)
    assert shop.id
    for wrong, channel in (("5173", "ussd"), ("6048", "telegram"), ("5174", "ussd")):
        with pytest.raises((WrongPin, PinLocked)):
            await parties.check_pin(core, party_id=shop.id, pin=Pin(wrong), channel=channel)
    with pytest.raises(PinLocked):  # refused before the PIN is judged: not a wrong try
        await parties.check_pin(core, party_id=shop.id, pin=Pin(PIN), channel="ussd")
    async with core.sessions() as session:
        events = (await session.execute(select(AuditEvent).order_by(AuditEvent.id))).scalars().all()
    tries = [e for e in events if e.action == "party.pin_wrong"]
    assert [(e.channel, e.actor, e.subject_party_id) for e in tries] == [
        ("ussd", f"party:{shop.id}", shop.id),
        ("telegram", f"party:{shop.id}", shop.id),
        ("ussd", f"party:{shop.id}", shop.id),
    ]
    assert [e.details for e in tries] == [{"attempt": n, "of": 3} for n in (1, 2, 3)]
    assert all(e.at is not None for e in tries)
    assert [e.action for e in events][-1] == "party.pin_locked"
    assert not any(pin in str(e.details) for e in events for pin in ("5173", "6048", "5174"))


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


# -- who(): the first hop of every conversation --------------------------------------------------


def _generic_who(monkeypatch: pytest.MonkeyPatch, core: Core) -> None:
    """Make who() take the SQLAlchemy path on PostgreSQL too (no connection of its own)."""
    monkeypatch.setattr(core.lookups, "_size", 0)
    monkeypatch.setattr(core.lookups, "_idle", [])


async def test_who_sees_every_change_the_same_on_either_path(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """who() answers what identify() does, as a Who, on the next call after any change (no cache);
    on PostgreSQL the fast path (a raw asyncpg statement) and the SQLAlchemy path agree, values
    and their types, for a party linked, relinked, unlinked, suspended, locked, and for nobody."""
    distributor, [shop] = await chain(core)
    assert shop.id and distributor.id

    async def both(channel: str, ref: str) -> parties.Who | None:
        on = None if channel == "ussd" else channel  # USSD: a channel of numbers
        found = await parties.who(core, channel=on, user_ref=ref)
        with monkeypatch.context() as patch:
            _generic_who(patch, core)
            generic = await parties.who(core, channel=on, user_ref=ref)
        assert found == generic
        assert [type(v) for v in found or ()] == [type(v) for v in generic or ()]
        return found

    async def expected(ref: str) -> parties.Who:
        party = await parties.identify(core, user_ref=ref)
        assert party is not None and party.id is not None
        return parties.Who(
            party.id,
            party.role,
            party.name,
            party.status,
            party.language,
            party.pin_locked,
            party.parent_id,
        )

    unlinked = await both("ussd", shop.msisdn)
    assert unlinked == await expected(shop.msisdn)
    assert unlinked is not None and unlinked.role == Role.RETAILER and not unlinked.pin_locked
    assert unlinked.parent_id == distributor.id and unlinked.label == "Shop 1"
    assert isinstance(unlinked.id, int) and isinstance(unlinked.pin_locked, bool)
    for channel, ref in [("ussd", "+254700000999"), ("telegram", "777"), ("telegram", "x7")]:
        assert await both(channel, ref) is None

    await links.link(core, party_id=shop.id, telegram_user_id=777, how="test")
    assert await both("telegram", "777") == await expected(shop.msisdn)
    await links.link(core, party_id=shop.id, telegram_user_id=778, how="test")  # relinked
    assert await both("telegram", "777") is None
    assert await both("telegram", "778") == await expected(shop.msisdn)

    await parties.set_status(core, actor=ADMIN, ref=shop.msisdn, status=PartyStatus.SUSPENDED)
    suspended = await both("ussd", shop.msisdn)
    assert suspended is not None and suspended.status == PartyStatus.SUSPENDED
    assert await both("telegram", "778") == suspended == await expected(shop.msisdn)

    await parties.set_status(core, actor=ADMIN, ref=shop.msisdn, status=PartyStatus.ACTIVE)
    for wrong in ("9999", "9998", "9997"):
        with pytest.raises((WrongPin, PinLocked)):
            await parties.check_pin(core, party_id=shop.id, pin=Pin(wrong), channel="ussd")
    locked = await both("ussd", shop.msisdn)
    assert locked is not None and locked.pin_locked and locked.status == PartyStatus.ACTIVE
    assert locked == await expected(shop.msisdn) == await both("telegram", "778")


async def _seen_closed(connections: list[Any]) -> None:
    """Wait until the server's closes (pg_terminate_backend) have reached each connection: its
    end of the socket has read them. (Not a sleep: on a busy machine that takes what it takes.)"""

    async def all_closed() -> bool:
        return all(conn.is_closed() for conn in connections)

    await eventually(all_closed, what=f"{len(connections)} connections seen closed")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # PostgreSQL's pool only
@pytest.mark.parametrize("path", ["fast", "generic"])
async def test_who_after_postgresql_dropped_its_connections(
    core: Core, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """Connections the server closed are replaced as they are handed out (core/db.py,
    _replace_dropped), on both paths: the first who() after the drop already answers."""
    if path == "generic":
        _generic_who(monkeypatch, core)
    pool: Any = core.engine.sync_engine.pool
    pooled: list[Any] = []  # every asyncpg connection checked in to the pool, as it comes back
    event.listen(pool, "checkin", lambda _dbapi, record: pooled.append(record.driver_connection))
    _, [shop] = await chain(core)
    kept = pool.size()
    hop = [parties.who(core, user_ref=shop.msisdn) for _ in range(kept)]
    assert all(await asyncio.gather(*hop))  # the pool's connections all opened
    lookups: Any = core.lookups
    idle = [c for c in {id(c): c for c in pooled}.values() if c is not None] + lookups._idle
    url = core.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(url)
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    assert killed >= kept
    await _seen_closed(idle)
    for _ in range(6):
        found = await parties.who(core, user_ref=shop.msisdn)
        assert found is not None and found.id == shop.id


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # PostgreSQL's pool only
async def test_who_beyond_the_pool_gives_every_connection_back(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More first hops at once than the pool keeps: the overflow connections are closed on the
    way back (shielded I/O) and the kept ones returned without I/O; none is left checked out or
    counted as overflow, and the pool still answers."""
    _, [shop] = await chain(core)
    pool: Any = core.engine.sync_engine.pool
    burst = pool.size() + 5
    _generic_who(monkeypatch, core)  # the pool's path, which who() takes when lookups are busy
    found = await asyncio.gather(
        *(parties.who(core, user_ref=shop.msisdn) for _ in range(burst))
    )
    assert all(f is not None and f.id == shop.id for f in found)
    assert pool.checkedout() == 0
    assert pool.checkedin() == pool.size() and pool.overflow() <= 0
    assert await parties.who(core, user_ref=shop.msisdn) == found[0]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # PostgreSQL's pool only
async def test_who_on_its_own_connections_stays_bounded_and_replaces_a_dead_one(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: who() runs on the lookups' few connections, never more than their size even in
    a burst (the rest take the pool's path), and one the server killed is replaced by the next
    call without an error (a read, asked again on the pool)."""
    assert core.lookups is not None
    _, [shop] = await chain(core)
    lookups: Any = core.lookups
    burst = await asyncio.gather(
        *(parties.who(core, user_ref=shop.msisdn) for _ in range(30))
    )
    assert all(found is not None and found.id == shop.id for found in burst)
    assert 1 <= lookups._count <= lookups._size and len(lookups._idle) == lookups._count
    pids = [conn.get_server_pid() for conn in lookups._idle]
    url = core.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(url)
    try:
        await admin.fetchval("SELECT count(pg_terminate_backend(p)) FROM unnest($1::int[]) p", pids)
    finally:
        await admin.close()
    await _seen_closed(list(lookups._idle))
    for _ in range(len(pids) + 2):
        found = await parties.who(core, user_ref=shop.msisdn)
        assert found is not None and found.id == shop.id
    assert all(pid not in pids for pid in (c.get_server_pid() for c in lookups._idle))
