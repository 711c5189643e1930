"""Confirming a top-up: reservation and record in one transaction, behind the guards."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from core.context import Core
from core.errors import (
    IdempotencyConflict,
    InsufficientStock,
    InvalidAmount,
    InvalidMsisdn,
    LimitExceeded,
    NotPermitted,
    RepeatNeedsConfirmation,
)
from core.models import Reservation, Topup, TopupState
from core.services.topups import new_topup_id, request_topup
from tests.helpers import assert_ledger_ok, chain, give_retailer_stock

CUSTOMER = "0712345670"  # Safaricom


async def _shop(core: Core, stock_minor: int = 100_000) -> int:
    distributor, (shop,) = await chain(core)
    await give_retailer_stock(core, distributor, shop, stock_minor, "r1")
    return shop.id or 0


async def test_airtime_request_reserves_and_records_in_one_step(core: Core) -> None:
    shop = await _shop(core)
    topup = await request_topup(
        core, party_id=shop, msisdn=CUSTOMER, amount_minor=5_000, channel="test"
    )
    assert topup.msisdn == "+254712345670"
    assert (topup.operator_code, topup.product_code) == ("safaricom-ke", "safaricom-ke:airtime")
    assert topup.state == TopupState.RESERVED
    async with core.sessions() as session:
        reservation = await session.get(Reservation, topup.id)
        stored = await session.get(Topup, topup.id)
    assert reservation is not None and reservation.amount_minor == 5_000
    assert stored is not None and stored.created_at.tzinfo is not None
    await assert_ledger_ok(core)


async def test_bundle_is_priced_by_the_catalog(core: Core) -> None:
    shop = await _shop(core)
    topup = await request_topup(
        core,
        party_id=shop,
        msisdn=CUSTOMER,
        product_code="safaricom-ke:data-1gb-7d",
        channel="test",
    )
    assert (topup.kind, topup.amount_minor) == ("data", 25_000)
    with pytest.raises(InvalidAmount, match="fixed price"):
        await request_topup(
            core,
            party_id=shop,
            msisdn=CUSTOMER,
            product_code="safaricom-ke:data-1gb-7d",
            amount_minor=1,
            channel="test",
        )
    with pytest.raises(InvalidAmount, match="not sold for Airtel"):
        await request_topup(
            core,
            party_id=shop,
            msisdn="0733123456",
            product_code="safaricom-ke:data-1gb-7d",
            channel="test",
        )


async def test_guards_refuse_with_reasons_and_reserve_nothing(core: Core) -> None:
    shop = await _shop(core, stock_minor=10_000)
    with pytest.raises(InvalidMsisdn):
        await request_topup(core, party_id=shop, msisdn="12", amount_minor=5_000, channel="t")
    with pytest.raises(InvalidAmount, match="KES 5 to KES 10,000 in steps of KES 1"):
        await request_topup(core, party_id=shop, msisdn=CUSTOMER, amount_minor=450, channel="t")
    with pytest.raises(InsufficientStock, match="KES 100 of AIRTIME:safaricom-ke, KES 150"):
        await request_topup(core, party_id=shop, msisdn=CUSTOMER, amount_minor=15_000, channel="t")
    distributor_id = (await chain(core, retailers=0, tag="22"))[0].id or 0
    with pytest.raises(NotPermitted):
        await request_topup(
            core, party_id=distributor_id, msisdn=CUSTOMER, amount_minor=5_000, channel="t"
        )
    async with core.sessions() as session:
        assert (await session.execute(select(Topup))).first() is None
        assert (await session.execute(select(Reservation))).first() is None


async def test_repeat_within_the_window_needs_a_second_confirmation(core: Core) -> None:
    shop = await _shop(core)
    await request_topup(core, party_id=shop, msisdn=CUSTOMER, amount_minor=5_000, channel="t")
    with pytest.raises(RepeatNeedsConfirmation, match=r"KES 50 to \+254712345670\) was made 0 s"):
        await request_topup(
            core, party_id=shop, msisdn="+254712345670", amount_minor=5_000, channel="t"
        )
    # Another amount or number is no repeat; an explicit confirmation sends the same again.
    await request_topup(core, party_id=shop, msisdn=CUSTOMER, amount_minor=6_000, channel="t")
    await request_topup(
        core, party_id=shop, msisdn=CUSTOMER, amount_minor=5_000, channel="t", confirm_repeat=True
    )


async def test_client_key_makes_a_retried_confirmation_the_same_topup(core: Core) -> None:
    shop = await _shop(core)
    first = await request_topup(
        core, party_id=shop, msisdn=CUSTOMER, amount_minor=5_000, channel="t", client_key="k1"
    )
    again = await request_topup(
        core, party_id=shop, msisdn=CUSTOMER, amount_minor=5_000, channel="t", client_key="k1"
    )
    assert again.id == first.id
    with pytest.raises(IdempotencyConflict):  # the same key for another amount
        await request_topup(
            core, party_id=shop, msisdn=CUSTOMER, amount_minor=6_000, channel="t", client_key="k1"
        )
    await assert_ledger_ok(core)


async def test_daily_limit_holds_under_concurrent_requests(core: Core) -> None:
    shop = await _shop(core)
    async with core.transaction() as session:
        from core.models import Party

        party = await session.get(Party, shop)
        assert party is not None
        party.daily_limit_minor = 30_000
    amounts = [10_000, 11_000, 12_000, 13_000, 14_000, 15_000]
    results = await asyncio.gather(
        *(
            request_topup(core, party_id=shop, msisdn=CUSTOMER, amount_minor=a, channel="t")
            for a in amounts
        ),
        return_exceptions=True,
    )
    accepted = [r for r in results if isinstance(r, Topup)]
    refused = [r for r in results if isinstance(r, LimitExceeded)]
    assert len(accepted) + len(refused) == len(amounts), results
    assert sum(t.amount_minor for t in accepted) <= 30_000
    assert len(accepted) == 2  # whichever two came first; a third never fits under KES 300
    await assert_ledger_ok(core)


def test_topup_ids_are_short_unique_and_time_ordered() -> None:
    ids = [new_topup_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 16 and i.startswith("T") for i in ids)
