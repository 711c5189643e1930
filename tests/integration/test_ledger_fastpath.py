"""Reserve, capture and release on both databases, aimed at PostgreSQL's one-statement fast path
(core/ledger/pg_fast.py): new accounts, replays, conflicts, overdrafts, resolve-once,
concurrency, and that the statement is part of the caller's transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Core
from core.errors import IdempotencyConflict, NotFound, ReservationResolved
from core.ledger import AccountRef, Leg, Overdraft, Posting, account_balances
from core.ledger import pg_fast as ledger_pg
from core.models import AccountKind, Party, Reservation, ReservationStatus, Transfer
from tests.helpers import SAFARICOM, assert_ledger_ok, chain, give_retailer_stock

ASSET = f"AIRTIME:{SAFARICOM}"
MAIN, INFLIGHT, SOLD = AccountKind.MAIN, AccountKind.INFLIGHT, AccountKind.SOLD


async def _shop(core: Core, stock_minor: int) -> int:
    distributor, [shop] = await chain(core)
    await give_retailer_stock(core, distributor, shop, stock_minor, "r1")
    assert shop.id
    return shop.id


async def _reserve(core: Core, rid: str, party_id: int, amount: int) -> Posting:
    async with core.transaction() as session:
        return await core.ledger.reserve(
            session, reservation_id=rid, party_id=party_id, asset=ASSET, amount_minor=amount
        )


async def _try_reserve(core: Core, rid: str, party_id: int, amount: int) -> bool:
    try:
        await _reserve(core, rid, party_id, amount)
    except Overdraft:
        return False
    return True


async def _resolve_in(session: AsyncSession, core: Core, rid: str, outcome: str) -> Posting:
    if outcome == ReservationStatus.CAPTURED:
        return await core.ledger.capture(session, reservation_id=rid)
    return await core.ledger.release(session, reservation_id=rid)


async def _resolve(core: Core, rid: str, outcome: str) -> Posting:
    async with core.transaction() as session:
        return await _resolve_in(session, core, rid, outcome)


async def _balances(core: Core, party_id: int) -> dict[AccountKind, int]:
    async with core.sessions() as session:
        rows = await account_balances(session, party_id)
    return {AccountKind(kind): bal for (asset, kind), bal in rows.items() if asset == ASSET}


async def _count(core: Core, column: Any, *where: Any) -> int:
    async with core.sessions() as session:
        query = select(func.count(column)).where(*where)
        return int((await session.execute(query)).scalar_one())


@contextmanager
def _statements(core: Core) -> Iterator[list[str]]:
    """The statements SQLAlchemy executes while the block runs (BEGIN/COMMIT not included)."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(core.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(core.engine.sync_engine, "before_cursor_execute", record)


async def test_first_reservation_creates_the_inflight_account(core: Core) -> None:
    shop = await _shop(core, 10_000)
    assert INFLIGHT not in await _balances(core, shop)
    # The first attempt rolls back with the caller's transaction: the new account goes with it.
    with pytest.raises(RuntimeError):
        async with core.transaction() as session:
            await core.ledger.reserve(
                session, reservation_id="t-0", party_id=shop, asset=ASSET, amount_minor=1_000
            )
            raise RuntimeError("roll back")
    assert INFLIGHT not in await _balances(core, shop)
    first = await _reserve(core, "t-1", shop, 1_000)
    assert not first.replayed and first.by_kind == {"reserve": 1_000}
    await _reserve(core, "t-2", shop, 2_000)  # the inflight account now exists and is cached
    assert await _balances(core, shop) == {MAIN: 7_000, INFLIGHT: 3_000}
    assert await _count(core, Reservation.id) == 2
    await assert_ledger_ok(core)


async def test_replay_returns_the_original_and_a_different_request_conflicts(core: Core) -> None:
    shop = await _shop(core, 10_000)
    original = await _reserve(core, "t-1", shop, 1_000)
    again = await _reserve(core, "t-1", shop, 1_000)
    assert again.replayed
    assert again.transfer_ids == original.transfer_ids
    assert again.by_kind == original.by_kind == {"reserve": 1_000}
    with pytest.raises(IdempotencyConflict):
        await _reserve(core, "t-1", shop, 2_000)
    async with core.transaction() as session:
        other = (await session.execute(select(Party.id).where(Party.id != shop))).scalars().first()
    assert other is not None
    with pytest.raises(IdempotencyConflict):
        await _reserve(core, "t-1", other, 1_000)
    assert await _balances(core, shop) == {MAIN: 9_000, INFLIGHT: 1_000}
    assert await _count(core, Transfer.id, Transfer.kind == "reserve") == 1
    assert await _count(core, Reservation.id) == 1
    await assert_ledger_ok(core)


async def test_invalid_requests_are_refused_before_anything_is_written(core: Core) -> None:
    shop = await _shop(core, 10_000)
    transfers = await _count(core, Transfer.id)
    for rid, amount in (("t-0", 0), ("t-1", -5), ("t#2", 100)):
        with pytest.raises(ValueError):
            await _reserve(core, rid, shop, amount)
    assert await _count(core, Transfer.id) == transfers
    assert await _count(core, Reservation.id) == 0


async def test_overdraft_names_the_main_account_and_leaves_nothing(core: Core) -> None:
    shop = await _shop(core, 1_000)
    await _reserve(core, "t-1", shop, 400)  # warm: both accounts exist and are cached
    transfers = await _count(core, Transfer.id)
    with pytest.raises(Overdraft) as info:
        await _reserve(core, "t-2", shop, 601)
    assert info.value.account == AccountRef(MAIN, ASSET, shop)
    assert (info.value.available_minor, info.value.needed_minor) == (600, 601)
    assert await _count(core, Transfer.id) == transfers
    assert await _count(core, Transfer.id, Transfer.idempotency_key == "reserve:t-2") == 0
    assert await _count(core, Reservation.id, Reservation.id == "t-2") == 0
    assert await _balances(core, shop) == {MAIN: 600, INFLIGHT: 400}
    assert not (await _reserve(core, "t-2", shop, 600)).replayed  # the refused id is free again
    await assert_ledger_ok(core)


async def test_capture_and_release_resolve_once(core: Core) -> None:
    shop = await _shop(core, 10_000)
    for rid in ("a", "b", "c", "d"):
        await _reserve(core, rid, shop, 1_000)
    captured = ReservationStatus.CAPTURED
    released = ReservationStatus.RELEASED
    first = await _resolve(core, "a", captured)  # creates the sold account
    assert not first.replayed and first.by_kind == {"capture": 1_000}
    assert (await _resolve(core, "b", captured)).by_kind == {"capture": 1_000}
    assert (await _resolve(core, "c", released)).by_kind == {"release": 1_000}
    assert (await _resolve(core, "a", captured)).replayed
    assert (await _resolve(core, "c", released)).replayed
    with pytest.raises(ReservationResolved):
        await _resolve(core, "a", released)
    with pytest.raises(ReservationResolved):
        await _resolve(core, "c", captured)
    with pytest.raises(NotFound):
        await _resolve(core, "never-made", captured)
    assert await _balances(core, shop) == {MAIN: 7_000, INFLIGHT: 1_000, SOLD: 2_000}
    assert await _count(core, Transfer.id, Transfer.kind.in_(["capture", "release"])) == 3
    await assert_ledger_ok(core)


async def test_200_concurrent_reservations_then_racing_resolutions(core: Core) -> None:
    shop = await _shop(core, 50 * 700)
    await _reserve(core, "warm", shop, 700)
    await _resolve(core, "warm", ReservationStatus.RELEASED)  # every account exists now
    outcomes = await asyncio.gather(*(_try_reserve(core, f"c-{i}", shop, 700) for i in range(200)))
    assert outcomes.count(True) == 50
    assert await _balances(core, shop) == {MAIN: 0, INFLIGHT: 50 * 700}
    made = [f"c-{i}" for i, ok in enumerate(outcomes) if ok]

    async def race(rid: str, outcome: ReservationStatus) -> str:
        try:
            posting = await _resolve(core, rid, outcome)
        except ReservationResolved:
            return "refused"
        return "replayed" if posting.replayed else outcome.value

    results = await asyncio.gather(
        *(race(rid, o) for rid in made for o in (ReservationStatus.CAPTURED,) * 2),
        *(race(rid, ReservationStatus.RELEASED) for rid in made),
    )
    captures, releases = results[: 2 * len(made)], results[2 * len(made) :]
    won = captures.count("captured") + releases.count("released")
    assert won == 50  # each reservation resolved exactly once
    bal = await _balances(core, shop)
    assert bal[INFLIGHT] == 0
    assert bal[MAIN] + bal[SOLD] == 50 * 700
    assert bal[SOLD] == 700 * captures.count("captured")
    await assert_ledger_ok(core)


async def _warm_shop(core: Core) -> int:
    """A shop whose main, inflight and sold accounts exist and whose ids the ledger has cached."""
    shop = await _shop(core, 10_000)
    await _reserve(core, "warm", shop, 1_000)
    await _resolve(core, "warm", ReservationStatus.CAPTURED)
    return shop


async def test_warm_reserve_and_capture_are_one_statement_each(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = await _warm_shop(core)
    fast: list[str] = []
    fetch = ledger_pg._fetch

    async def counted(session: AsyncSession, sql: str, params: tuple[Any, ...]) -> Any:
        fast.append(sql)
        return await fetch(session, sql, params)

    monkeypatch.setattr(ledger_pg, "_fetch", counted)
    with _statements(core) as sent:
        await _reserve(core, "t-1", shop, 1_000)
        await _resolve(core, "t-1", ReservationStatus.CAPTURED)
    if core.engine.dialect.name == "postgresql":
        assert fast == [ledger_pg.RESERVE, ledger_pg.RESOLVE]
        assert sent == []  # nothing through SQLAlchemy's statements
    else:
        assert fast == []
    assert await _balances(core, shop) == {MAIN: 8_000, INFLIGHT: 0, SOLD: 2_000}


async def test_the_callers_transaction_is_the_unit_of_work(core: Core) -> None:
    """Even when the ledger's statement is the first of the transaction (SQLAlchemy's asyncpg
    adapter sends BEGIN lazily, with the first statement it executes)."""
    shop = await _warm_shop(core)
    for outcome in (None, ReservationStatus.CAPTURED, ReservationStatus.RELEASED):
        if outcome is not None:
            await _reserve(core, f"rb-{outcome}", shop, 1_000)
        before = await _balances(core, shop)
        transfers = await _count(core, Transfer.id)
        with pytest.raises(RuntimeError):
            async with core.transaction() as session:
                if outcome is None:
                    await core.ledger.reserve(
                        session, reservation_id="rb", party_id=shop, asset=ASSET, amount_minor=500
                    )
                else:
                    await _resolve_in(session, core, f"rb-{outcome}", outcome)
                raise RuntimeError("roll back")
        assert await _balances(core, shop) == before
        assert await _count(core, Transfer.id) == transfers
    assert await _count(core, Reservation.id, Reservation.id == "rb") == 0
    assert await _count(core, Reservation.id, Reservation.status == "reserved") == 2
    await assert_ledger_ok(core)


async def test_a_database_error_is_sqlalchemys_and_rolls_back(core: Core) -> None:
    """A reservation row without its transfer (not something the ledger makes): the insert fails
    on the primary key, raised as SQLAlchemy raises it on both databases, and nothing remains."""
    shop = await _warm_shop(core)
    async with core.transaction() as session:
        session.add(Reservation(id="orphan", party_id=shop, asset=ASSET, amount_minor=1))
    before, transfers = await _balances(core, shop), await _count(core, Transfer.id)
    with pytest.raises(IntegrityError):
        await _reserve(core, "orphan", shop, 1_000)
    assert await _balances(core, shop) == before
    assert await _count(core, Transfer.id) == transfers
    assert not (await _reserve(core, "next", shop, 1_000)).replayed  # the connection still works


async def test_top_ups_and_other_postings_on_the_same_accounts_do_not_deadlock(core: Core) -> None:
    """Reservations racing their resolutions while generic postings (which hold the transfer's
    foreign-key locks between statements) credit the same main and sold accounts. An earlier fast
    path that locked the rows and then updated them in one statement deadlocked here."""
    shop = await _warm_shop(core)
    await _resolve(core, "warm", ReservationStatus.CAPTURED)  # the sold account exists too
    issuance = AccountRef(AccountKind.ISSUANCE, ASSET)
    errors: list[BaseException] = []

    async def guarded(op: Any) -> None:
        try:
            await op
        except (ReservationResolved, NotFound):  # NotFound: its reservation failed
            pass
        except Exception as exc:  # collected, and reported below
            errors.append(exc)

    async def top_ups(worker: int) -> None:
        for i in range(12):
            rid = f"w{worker}-{i}"
            await guarded(_reserve(core, rid, shop, 1))
            await asyncio.gather(
                *(guarded(_resolve(core, rid, o)) for o in ("captured", "captured", "released"))
            )

    async def post(key: str, legs: list[Leg]) -> None:
        async with core.transaction() as session:
            await core.ledger.post(session, op_key=key, legs=legs)

    async def postings(worker: int) -> None:
        for i in range(24):
            credited = [AccountRef(MAIN, ASSET, shop), AccountRef(SOLD, ASSET, shop)][: 1 + i % 2]
            await guarded(post(f"p{worker}-{i}", [Leg("intake", issuance, c, 1) for c in credited]))

    await asyncio.gather(*(top_ups(w) for w in range(12)), *(postings(w) for w in range(6)))
    assert errors == []
    assert (await _balances(core, shop))[INFLIGHT] == 0
    await assert_ledger_ok(core)
