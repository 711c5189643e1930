"""Automatic alerts on both databases: low stock told once per crossing (retailers on top-ups,
distributors on sales), per-party thresholds, and an unknown top-up reaching the distributor's
support queue. Real services, SQL, Redis and the sandbox's SMS sink; nothing of ours is faked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from core.context import Core
from core.jobs.queue import JobQueue
from core.jobs.scripts import job_key_prefix
from core.models import Notification, OperatorProvider, Party, TopupState
from core.providers.sms import AfricasTalkingSms
from core.routing.health import Health
from core.routing.router import Router
from core.services import alerts, reports, stock, support
from core.services.delivery import Delivery, advance
from core.services.finish import Finisher
from core.services.notify import Notifier
from core.services.topups import confirm_topup, request_topup
from tests.helpers import (
    ADMIN,
    SAFARICOM,
    assert_ledger_ok,
    chain,
    give_distributor_stock,
    give_retailer_stock,
)

KES = 100  # minor units per shilling; the default threshold is KES 1,000


async def _alerts(core: Core, party: Party) -> list[Notification]:
    """The low-stock alerts owed to ``party``, oldest first."""
    async with core.sessions() as session:
        rows = await session.execute(
            select(Notification)
            .where(Notification.key.startswith(f"low:{party.id}:"))  # type: ignore[attr-defined]
            .order_by(Notification.id)  # type: ignore[arg-type]
        )
        return list(rows.scalars())


async def _top_up(core: Core, shop: Party, amount_kes: int, n: int = 0) -> None:
    await request_topup(
        core,
        party_id=shop.id or 0,
        msisdn=f"07123{n:05d}",
        amount_minor=amount_kes * KES,
        channel="test",
        confirm_repeat=True,
    )


async def test_a_retailer_is_told_once_per_crossing(core: Core) -> None:
    distributor, [shop] = await chain(core)
    await give_retailer_stock(core, distributor, shop, 2_000 * KES, "r1")
    for amount in (500, 500):  # 2,000 → 1,000: at the threshold is not below it
        await _top_up(core, shop, amount)
    assert await _alerts(core, shop) == []
    for amount in (400, 100, 200, 300):  # 600 crosses; the rest stay below, silent
        await _top_up(core, shop, amount)
    [first] = await _alerts(core, shop)
    assert first.text == (
        "AirGate: your Safaricom stock is KES 600, below KES 1,000. Buy stock: menu 4."
    )
    assert first.recipient == shop.msisdn and first.via == "sms"
    await give_retailer_stock(core, distributor, shop, 1_000 * KES, "r2")  # 0 → 1,000: re-armed
    await _top_up(core, shop, 50)
    await _top_up(core, shop, 50)
    later = await _alerts(core, shop)
    assert len(later) == 2 and "KES 950, below KES 1,000" in later[1].text
    await assert_ledger_ok(core)


async def test_concurrent_top_ups_crossing_alert_exactly_once(core: Core) -> None:
    distributor, [shop] = await chain(core)
    await give_retailer_stock(core, distributor, shop, 2_000 * KES, "r1")
    await asyncio.gather(*(_top_up(core, shop, 150, n) for n in range(10)))  # 2,000 → 500
    [alert] = await _alerts(core, shop)
    assert "below KES 1,000" in alert.text
    await assert_ledger_ok(core)


async def test_a_distributor_selling_below_its_threshold_is_told_once(core: Core) -> None:
    distributor, shops = await chain(core, retailers=8)
    await give_distributor_stock(core, distributor, 2_500 * KES, "d1")
    for shop in shops:
        await stock.deposit(
            core,
            actor=ADMIN,
            receiver_ref=distributor.msisdn,
            payer_ref=shop.msisdn,
            amount_minor=250 * KES,
            reference=f"cash-{shop.id}",
        )

    async def sell(shop: Party) -> None:
        await stock.sell(
            core,
            actor=ADMIN,
            seller_ref=distributor.msisdn,
            buyer_ref=shop.msisdn,
            operator_code=SAFARICOM,
            face_minor=250 * KES,
        )

    # Eight sales at once on one distributor account, 2,500 → 500: one of them crosses 1,000.
    await asyncio.gather(*(sell(shop) for shop in shops))
    [alert] = await _alerts(core, distributor)
    assert alert.text == (
        "AirGate: your Safaricom stock is KES 750, below KES 1,000. "
        "Restock soon so your retailers can sell."
    )
    assert await _alerts(core, shops[0]) == []  # buying raises a retailer's stock
    await assert_ledger_ok(core)


async def test_a_clawback_that_crosses_tells_the_retailer(core: Core) -> None:
    distributor, [shop] = await chain(core)
    await give_retailer_stock(core, distributor, shop, 1_500 * KES, "r1")
    await stock.clawback(
        core,
        actor=ADMIN,
        seller_ref=distributor.msisdn,
        buyer_ref=shop.msisdn,
        operator_code=SAFARICOM,
        amount_minor=1_000 * KES,
        reason="sold by mistake",
    )
    [alert] = await _alerts(core, shop)
    assert "KES 500, below KES 1,000" in alert.text


async def test_a_party_threshold_overrides_the_default_everywhere(core: Core) -> None:
    distributor, [own, usual] = await chain(core, retailers=2)
    for i, shop in enumerate((own, usual)):
        await give_retailer_stock(core, distributor, shop, 2_000 * KES, f"r{i}")
    changed = await alerts.set_threshold(
        core, actor=ADMIN, ref=own.msisdn, threshold_minor=300 * KES
    )
    assert changed.low_stock_minor == 300 * KES
    default = core.settings.low_stock_minor
    for shop in (own, usual):
        await _top_up(core, shop, 1_200)  # 800 left: below the default, above 300
    assert await _alerts(core, own) == [] and len(await _alerts(core, usual)) == 1
    listed = await stock.low_stock(
        core, distributor_id=distributor.id or 0, threshold_minor=default
    )
    assert [row.party_id for row in listed] == [usual.id]
    flags = {
        r.party_id: r.low(default)
        for r in await reports.retailers_of(core, distributor_id=distributor.id or 0)
    }
    assert flags == {own.id: False, usual.id: True}

    await _top_up(core, own, 600)  # 200 left: below its own 300
    [alert] = await _alerts(core, own)
    assert "KES 200, below KES 300" in alert.text
    listed = await stock.low_stock(
        core, distributor_id=distributor.id or 0, threshold_minor=default
    )
    assert [row.party_id for row in listed] == [own.id, usual.id]  # lowest first

    back = await alerts.set_threshold(core, actor=ADMIN, ref=own.msisdn, threshold_minor=None)
    assert back.low_stock_minor is None


async def test_a_confirmed_top_up_enqueues_its_alert_after_the_commit(
    core: Core, redis_url: str
) -> None:
    distributor, [shop] = await chain(core)
    await give_retailer_stock(core, distributor, shop, 1_000 * KES, "r1")
    queue = await JobQueue.connect(redis_url)
    try:
        await confirm_topup(
            core,
            queue,
            party_id=shop.id or 0,
            msisdn="0712345670",
            amount_minor=100 * KES,
            channel="test",
        )
        [alert] = await _alerts(core, shop)
        assert await queue.redis.exists(f"{job_key_prefix}n{alert.id}:0")
    finally:
        await queue.close()


@pytest.fixture
async def delivery(core: Core, sandbox_url: str, redis_url: str) -> AsyncIterator[Delivery]:
    """What a worker builds at start-up (core/worker.py), on the sandbox."""
    settings = core.settings.model_copy(
        update={
            "provider_url": sandbox_url,
            "provider_auth_url": sandbox_url,
            "sms_url": sandbox_url,
        }
    )
    sms = AfricasTalkingSms.from_settings(settings)
    queue = await JobQueue.connect(redis_url)
    router = Router.from_settings(settings, health=Health.from_settings(settings, queue.redis))
    notifier = Notifier(core=core, sms=sms, telegram=None)
    try:
        yield Delivery(
            core=core, router=router, notifier=notifier, queue=queue, finisher=Finisher(core)
        )
    finally:
        await notifier.close()
        await queue.close()
        await sms.close()
        await router.close()


async def _sms_to(sandbox_url: str, msisdn: str) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{sandbox_url}/sandbox/sms", params={"to": msisdn}) as resp,
    ):
        body = await resp.json()
    return list(body["messages"] if isinstance(body, dict) else body)


async def test_an_escalated_top_up_reaches_the_distributors_queue(
    core: Core, delivery: Delivery, sandbox_url: str
) -> None:
    distributor, [shop, other] = await chain(core, retailers=2)
    await give_retailer_stock(core, distributor, shop, 5_000 * KES, "r1")
    async with core.transaction() as session:  # the catalog cannot route it: escalated at once
        refs = await session.get(OperatorProvider, (SAFARICOM, "reloadly"))
        assert refs is not None
        refs.airtime_ref = None
    core.catalog.invalidate()
    topup = await request_topup(
        core, party_id=shop.id or 0, msisdn="0712345670", amount_minor=250 * KES, channel="test"
    )
    state = await advance(delivery, topup.id, sends=0, checks=0, fresh=True)
    assert state == TopupState.ESCALATED

    [case] = await support.queue(core, distributor_id=distributor.id or 0)
    assert (case.topup_id, case.reason, case.party_id) == (topup.id, "unknown_outcome", shop.id)
    assert (case.msisdn, case.amount_minor, case.shop_name) == (
        "+254712345670",
        250 * KES,
        "Shop 1",
    )
    one = await support.queued_case(core, distributor_id=distributor.id or 0, case_id=case.case_id)
    assert one == case
    assert await support.queue(core, distributor_id=other.id or 0) == []  # not its retailers

    told = await _sms_to(sandbox_url, distributor.msisdn)
    assert [m["message"] for m in told] == [
        f"AirGate: Shop 1's top-up of KES 250 to 0712345670 is unconfirmed. "
        f"Support case {case.case_id}: menu 10."
    ]
    assert any("still unconfirmed" in m["message"] for m in await _sms_to(sandbox_url, shop.msisdn))
