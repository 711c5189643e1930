"""The ledger on real SQLite and PostgreSQL: two-phase reservations, idempotency, concurrency."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from core.context import Core
from core.errors import IdempotencyConflict, NotFound, ReservationResolved
from core.ledger import AccountRef, Leg, Overdraft, account_balances
from core.models import AccountKind, Transfer
from tests.helpers import SAFARICOM, assert_ledger_ok, chain, give_retailer_stock

ASSET = f"AIRTIME:{SAFARICOM}"


async def _reserve(core: Core, rid: str, party_id: int, amount: int) -> bool:
    try:
        async with core.transaction() as session:
            await core.ledger.reserve(
                session, reservation_id=rid, party_id=party_id, asset=ASSET, amount_minor=amount
            )
        return True
    except Overdraft:
        return False


async def _balances(core: Core, party_id: int) -> dict[tuple[str, str], int]:
    async with core.sessions() as session:
        return await account_balances(session, party_id)


async def _transfer_count(core: Core) -> int:
    async with core.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(Transfer))).scalar_one())


async def test_reserve_capture_release_move_stock_and_resolve_once(core: Core) -> None:
    distributor, [shop] = await chain(core)
    await give_retailer_stock(core, distributor, shop, 10_000, "r1")
    assert shop.id
    assert await _reserve(core, "t-1", shop.id, 3_000)
    assert await _reserve(core, "t-2", shop.id, 2_000)
    bal = await _balances(core, shop.id)
    assert bal[(ASSET, AccountKind.MAIN)] == 5_000
    assert bal[(ASSET, AccountKind.INFLIGHT)] == 5_000

    async with core.transaction() as session:
        await core.ledger.capture(session, reservation_id="t-1")
    async with core.transaction() as session:
        await core.ledger.release(session, reservation_id="t-2")
    bal = await _balances(core, shop.id)
    assert bal[(ASSET, AccountKind.MAIN)] == 7_000
    assert bal[(ASSET, AccountKind.INFLIGHT)] == 0
    assert bal[(ASSET, AccountKind.SOLD)] == 3_000

    # A reservation resolves at most once: the same outcome again is a no-op, the other refused.
    async with core.transaction() as session:
        again = await core.ledger.capture(session, reservation_id="t-1")
    assert again.replayed
    with pytest.raises(ReservationResolved):
        async with core.transaction() as session:
            await core.ledger.release(session, reservation_id="t-1")
    with pytest.raises(NotFound):
        async with core.transaction() as session:
            await core.ledger.capture(session, reservation_id="never-made")
    assert (await _balances(core, shop.id))[(ASSET, AccountKind.MAIN)] == 7_000
    await assert_ledger_ok(core)


async def test_same_key_twice_is_one_transfer_and_a_different_request_is_refused(
    core: Core,
) -> None:
    distributor, [shop] = await chain(core)
    await give_retailer_stock(core, distributor, shop, 10_000, "r1")
    assert shop.id
    before = await _transfer_count(core)
    assert await _reserve(core, "dup", shop.id, 1_000)
    assert await _reserve(core, "dup", shop.id, 1_000)
    assert await _transfer_count(core) == before + 1
    assert (await _balances(core, shop.id))[(ASSET, AccountKind.MAIN)] == 9_000
    with pytest.raises(IdempotencyConflict):
        await _reserve(core, "dup", shop.id, 2_000)
    await assert_ledger_ok(core)


async def test_concurrent_same_key_posts_once(core: Core) -> None:
    distributor, [shop] = await chain(core)
    await give_retailer_stock(core, distributor, shop, 10_000, "r1")
    assert shop.id
    before = await _transfer_count(core)
    results = await asyncio.gather(*(_reserve(core, "same", shop.id, 500) for _ in range(20)))
    assert all(results)
    assert await _transfer_count(core) == before + 1
    assert (await _balances(core, shop.id))[(ASSET, AccountKind.MAIN)] == 9_500
    await assert_ledger_ok(core)


async def test_200_concurrent_reservations_against_a_balance_covering_50(core: Core) -> None:
    distributor, [shop] = await chain(core)
    await give_retailer_stock(core, distributor, shop, 50 * 700, "r1")
    assert shop.id
    outcomes = await asyncio.gather(*(_reserve(core, f"c-{i}", shop.id, 700) for i in range(200)))
    assert outcomes.count(True) == 50
    bal = await _balances(core, shop.id)
    assert bal[(ASSET, AccountKind.MAIN)] == 0
    assert bal[(ASSET, AccountKind.INFLIGHT)] == 50 * 700
    await assert_ledger_ok(core)


async def test_overdraft_rolls_back_every_leg(core: Core) -> None:
    distributor, [shop] = await chain(core)
    await give_retailer_stock(core, distributor, shop, 1_000, "r1")
    assert shop.id
    before = await _transfer_count(core)
    main = AccountRef(AccountKind.MAIN, ASSET, shop.id)
    sold = AccountRef(AccountKind.SOLD, ASSET, shop.id)
    legs = [Leg("capture", main, sold, 600), Leg("capture", main, sold, 600)]
    with pytest.raises(Overdraft) as info:
        async with core.transaction() as session:
            await core.ledger.post(session, op_key="two-legs", legs=legs)
    assert info.value.available_minor == 1_000
    assert info.value.needed_minor == 1_200
    assert await _transfer_count(core) == before
    assert (await _balances(core, shop.id))[(ASSET, AccountKind.MAIN)] == 1_000


async def test_database_refuses_edited_transfers_and_overdrawn_accounts(core: Core) -> None:
    distributor, [shop] = await chain(core)
    await give_retailer_stock(core, distributor, shop, 1_000, "r1")
    with pytest.raises(DBAPIError, match="immutable"):
        async with core.transaction() as session:
            await session.execute(text("UPDATE transfer SET amount_minor = 1"))
    with pytest.raises(DBAPIError, match="immutable"):
        async with core.transaction() as session:
            await session.execute(text("DELETE FROM transfer"))
    with pytest.raises(IntegrityError):
        async with core.transaction() as session:
            await session.execute(
                text("UPDATE account SET balance_minor = -1 WHERE party_id = :p"), {"p": shop.id}
            )
    await assert_ledger_ok(core)


async def test_replay_looks_up_exact_keys_only(core: Core) -> None:
    """LIKE 'key#%' treated ``_``/``%`` as wildcards (and SQLite ignores case): a replay of
    ``ord_1`` must not pick up the legs of ``ORD-1`` or ``ordX1``."""
    _, [shop] = await chain(core)
    assert shop.id
    issuance = AccountRef(AccountKind.ISSUANCE, ASSET)
    main = AccountRef(AccountKind.MAIN, ASSET, shop.id)
    for key, amount in (("ord_1", 100), ("ORD-1", 900), ("ordX1", 50)):
        async with core.transaction() as session:
            await core.ledger.post(
                session, op_key=key, legs=[Leg("intake", issuance, main, amount)] * 2
            )
    async with core.transaction() as session:
        again = await core.ledger.post(
            session, op_key="ord_1", legs=[Leg("intake", issuance, main, 100)] * 2
        )
    assert again.replayed and again.by_kind == {"intake": 200}
    assert len(again.transfer_ids) == 2


async def test_account_created_in_a_rolled_back_transaction_is_not_cached(core: Core) -> None:
    _, [shop] = await chain(core)
    assert shop.id
    odd = AccountRef(AccountKind.ISSUANCE, "CASH:XXX")
    phantom = AccountRef(AccountKind.MAIN, "CASH:XXX", shop.id)
    with pytest.raises(RuntimeError):
        async with core.transaction() as session:
            await core.ledger.post(session, op_key="t1", legs=[Leg("intake", odd, phantom, 5)])
            await core.ledger.post(session, op_key="t2", legs=[Leg("intake", odd, phantom, 5)])
            raise RuntimeError("roll back")
    # New accounts may now reuse the rolled-back ids; postings must still reach the right ones.
    other = AccountRef(AccountKind.ISSUANCE, "CASH:YYY")
    async with core.transaction() as session:
        await core.ledger.post(
            session,
            op_key="t3",
            legs=[Leg("intake", other, AccountRef(AccountKind.MAIN, "CASH:YYY", shop.id), 7)],
        )
    async with core.transaction() as session:
        await core.ledger.post(session, op_key="t4", legs=[Leg("intake", odd, phantom, 1_000)])
    assert (await _balances(core, shop.id))[("CASH:XXX", AccountKind.MAIN)] == 1_000
    await assert_ledger_ok(core)
