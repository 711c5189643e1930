"""Group commit of final states: a batch is all-or-nothing per top-up, and one bad item fails
only itself (real SQL, both databases)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from core.context import Core
from core.errors import ReservationResolved
from core.models import Notification, Reservation, Topup, TopupState
from core.models.types import utcnow
from core.services.finish import Final, Finisher
from core.services.notify import Message
from core.services.topups import request_topup
from tests.helpers import assert_ledger_ok, chain, give_retailer_stock


def _final(topup: Topup, state: TopupState) -> Final:
    def owed(stock: int) -> list[Message]:
        return [
            Message(key=f"{topup.id}:r", via="sms", recipient="+254700000001", text=f"{stock}")
        ]

    return Final(
        topup_id=topup.id,
        party_id=topup.party_id,
        state=state,
        row={
            "b_id": topup.id,
            "b_state": state,
            "b_final_at": utcnow(),
            "b_sends": 1,
            "b_checks": 0,
            "b_provider": None,
            "b_providers_tried": None,
            "b_provider_ref": None,
            "b_operator_txn_id": None,
            "b_detail": None,
        },
        stock_account=f"p{topup.party_id}:main:AIRTIME:{topup.operator_code}",
        owed=owed,
    )


async def test_a_batch_finishes_each_once_and_isolates_a_bad_item(core: Core) -> None:
    distributor, shops = await chain(core, retailers=3)
    for i, shop in enumerate(shops):
        await give_retailer_stock(core, distributor, shop, 100_000, f"r{i}")
    topups = [
        await request_topup(
            core,
            party_id=shops[i % 3].id or 0,
            msisdn=f"07123456{i:02d}",
            amount_minor=1_000,
            channel="t",
        )
        for i in range(12)
    ]
    # One reservation was resolved behind the top-up's back: capturing it must fail, alone.
    bad = topups[5]
    async with core.transaction() as session:
        await core.ledger.release(session, reservation_id=bad.id)
    finisher = Finisher(core)
    states = [TopupState.DELIVERED if i % 4 else TopupState.FAILED for i in range(12)]
    results = await asyncio.gather(
        *(finisher.finish(_final(t, s)) for t, s in zip(topups, states, strict=True)),
        finisher.finish(_final(topups[0], states[0])),  # the same outcome twice
        return_exceptions=True,
    )
    assert isinstance(results[5], ReservationResolved)
    good = [r for i, r in enumerate(results[:12]) if i != 5]
    assert all(isinstance(r, list) and len(r) == 1 for r in good), results
    assert results[12] is None or results[0] is None  # one of the two wrote it
    async with core.sessions() as session:
        rows = {t.id: t for t in (await session.execute(select(Topup))).scalars()}
        reservations = {
            r.id: r.status for r in (await session.execute(select(Reservation))).scalars()
        }
        notes = list((await session.execute(select(Notification))).scalars())
    notes = [n for n in notes if not n.key.startswith("low:")]  # stock alerts: test_alerts.py
    for i, topup in enumerate(topups):
        if i == 5:
            assert rows[topup.id].state == TopupState.RESERVED
            continue
        assert rows[topup.id].state == states[i]
        expected = "captured" if states[i] == TopupState.DELIVERED else "released"
        assert reservations[topup.id] == expected
    assert len(notes) == 11
    await assert_ledger_ok(core)


@pytest.mark.parametrize("size", [1, 200])
async def test_batches_of_any_size_commit(core: Core, size: int) -> None:
    distributor, (shop,) = await chain(core)
    await give_retailer_stock(core, distributor, shop, 10_000_000, "r")
    topups = [
        await request_topup(
            core, party_id=shop.id or 0, msisdn=f"0712{i:06d}", amount_minor=500, channel="t"
        )
        for i in range(size)
    ]
    finisher = Finisher(core)
    results = await asyncio.gather(
        *(finisher.finish(_final(t, TopupState.DELIVERED)) for t in topups)
    )
    assert all(r is not None for r in results)
    await assert_ledger_ok(core)


async def test_a_job_cancelled_while_it_waits_does_not_stall_the_others(core: Core) -> None:
    distributor, (shop,) = await chain(core)
    await give_retailer_stock(core, distributor, shop, 100_000, "r")
    topups = [
        await request_topup(
            core, party_id=shop.id or 0, msisdn=f"0712{i:06d}", amount_minor=500, channel="t"
        )
        for i in range(6)
    ]
    finisher = Finisher(core)
    tasks = [
        asyncio.create_task(finisher.finish(_final(t, TopupState.DELIVERED))) for t in topups
    ]
    await asyncio.sleep(0)  # all six are queued; the writer has started on the first batch
    tasks[0].cancel()  # arq's time-out or SIGTERM on one job
    tasks[4].cancel()
    done = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
    assert all(isinstance(r, list) for i, r in enumerate(done) if i not in (0, 4)), done
    async with core.sessions() as session:
        states = {t.state for t in (await session.execute(select(Topup))).scalars()}
    assert states == {TopupState.DELIVERED}  # the cancelled ones' outcomes were written too
    await assert_ledger_ok(core)
