"""``ledger verify`` catches each kind of damage: rows tampered with behind the services' back
(raw SQL on SQLite and PostgreSQL), and verify names exactly that problem.

A negative non-system balance (check 3) cannot be written at all: the database's own constraint
refuses it (tests/integration/test_ledger.py), so there is nothing for verify to catch there.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from core.context import Core
from core.models import Party, Transfer
from core.models.types import utcnow
from core.services import stock
from core.services.verify import verify
from tests.helpers import ADMIN, SAFARICOM, assert_ledger_ok, chain, give_retailer_stock

ASSET = f"AIRTIME:{SAFARICOM}"
OTHER_ASSET = "AIRTIME:airtel-ke"


async def _shops(core: Core) -> tuple[Party, Party]:
    """A distributor (its stock account at 0, sold on) and a shop with KES 100 of stock."""
    distributor, [shop] = await chain(core)
    await give_retailer_stock(core, distributor, shop, 10_000, "r1")
    await assert_ledger_ok(core)  # sound before the tampering
    return distributor, shop


async def _sql(core: Core, sql: str, **params: Any) -> None:
    async with core.transaction() as session:
        await session.execute(text(sql), params)


def _code(party: Party, kind: str, asset: str = ASSET) -> str:
    return f"p{party.id}:{kind}:{asset}"


async def _problems(core: Core) -> list[str]:
    return (await verify(core.engine)).problems


async def test_a_balance_moved_between_accounts_is_caught(core: Core) -> None:
    """Check 1: stock moved from the shop back to its distributor without a transfer (the asset
    still sums to 0)."""
    distributor, shop = await _shops(core)
    move = "UPDATE account SET balance_minor = balance_minor + :d WHERE code = :code"
    await _sql(core, move, d=-700, code=_code(shop, "main"))
    await _sql(core, move, d=700, code=_code(distributor, "main"))
    assert sorted(await _problems(core)) == sorted([
        f"{_code(shop, 'main')}: stored 9300, transfers say 10000",
        f"{_code(distributor, 'main')}: stored 700, transfers say 0",
    ])  # fmt: skip


async def test_a_balance_raised_from_nothing_is_caught(core: Core) -> None:
    """Check 2: stock made out of nothing: the asset no longer sums to zero."""
    _, shop = await _shops(core)
    await _sql(
        core,
        "UPDATE account SET balance_minor = balance_minor + 1 WHERE code = :code",
        code=_code(shop, "main"),
    )
    assert await _problems(core) == [
        f"{_code(shop, 'main')}: stored 10001, transfers say 10000",
        f"{ASSET}: balances sum to 1, not zero",
    ]


async def test_a_transfer_of_another_asset_is_caught(core: Core) -> None:
    """Check 4: a transfer labelled Airtel between two Safaricom accounts; the balances were made
    to agree with it, so only its asset is wrong."""
    distributor, shop = await _shops(core)
    async with core.transaction() as session:
        accounts = dict(
            (await session.execute(
                text("SELECT code, id FROM account WHERE code IN (:main, :theirs)"),
                {"main": _code(shop, "main"), "theirs": _code(distributor, "main")},
            )).all()
        )  # fmt: skip
        inserted = await session.execute(
            Transfer.__table__.insert()  # type: ignore[attr-defined]
            .values(
                idempotency_key="forged#0",
                kind="capture",
                asset=OTHER_ASSET,
                debit_account_id=accounts[_code(shop, "main")],
                credit_account_id=accounts[_code(distributor, "main")],
                amount_minor=500,
                created_at=utcnow(),
            )
            .returning(Transfer.__table__.c.id)  # type: ignore[attr-defined]
        )
        forged = inserted.scalar_one()
        move = "UPDATE account SET balance_minor = balance_minor + :d WHERE code = :code"
        await session.execute(text(move), {"d": -500, "code": _code(shop, "main")})
        await session.execute(text(move), {"d": 500, "code": _code(distributor, "main")})
    assert await _problems(core) == [
        f"transfer {forged}: asset {OTHER_ASSET} between {ASSET} and {ASSET}"
    ]


async def test_in_flight_stock_without_its_reservation_is_caught(core: Core) -> None:
    """Check 5: a reservation marked released while its stock stays in flight."""
    _, shop = await _shops(core)
    async with core.transaction() as session:
        await core.ledger.reserve(
            session, reservation_id="T1", party_id=shop.id or 0, asset=ASSET, amount_minor=700
        )
    await assert_ledger_ok(core)
    await _sql(core, "UPDATE reservation SET status = 'released' WHERE id = 'T1'")
    assert await _problems(core) == [f"party {shop.id} {ASSET}: in flight 700, reserved 0"]


async def test_free_credit_above_the_limit_is_caught(core: Core) -> None:
    """Check 6: the limit lowered in the party row while the credit already granted stays."""
    distributor, [shop] = await chain(core)
    await stock.set_credit_limit(
        core, actor=ADMIN, seller_ref=distributor.msisdn, buyer_ref=shop.msisdn, limit_minor=5_000
    )
    await assert_ledger_ok(core)
    await _sql(core, "UPDATE party SET credit_limit_minor = 1000 WHERE id = :p", p=shop.id)
    assert await _problems(core) == [f"party {shop.id}: free credit 5000 above its limit 1000"]
