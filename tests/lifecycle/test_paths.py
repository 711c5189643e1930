"""Every path of a top-up through the real worker and the real sandbox (digits: docs/PROVIDERS.md).

After each: the ledger verifies, and the sandbox's delivered count equals ours.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from core.ledger import account_balances
from core.models import (
    AccountKind,
    Party,
    Topup,
    TopupState,
)
from core.money import airtime_asset
from core.services.topups import confirm_topup
from tests.helpers import SAFARICOM, assert_ledger_ok, chain, give_retailer_stock
from tests.lifecycle.conftest import Rig

STOCK = 100_000  # KES 1,000


def number(last_digit: int) -> str:
    return f"071234567{last_digit}"


async def _shop(rig: Rig) -> Party:
    distributor, (shop,) = await chain(rig.core)
    await give_retailer_stock(rig.core, distributor, shop, STOCK, "r1")
    return shop


async def _top_up(rig: Rig, shop: Party, last_digit: int, **kw: Any) -> Topup:
    return await confirm_topup(
        rig.core,
        rig.queue,
        party_id=shop.id,
        msisdn=number(last_digit),
        amount_minor=kw.pop("amount_minor", 5_000),
        channel="test",
        **kw,
    )


async def _stock(rig: Rig, shop: Party) -> tuple[int, int, int]:
    async with rig.core.sessions() as session:
        balances = await account_balances(session, shop.id or 0)
    asset = airtime_asset(SAFARICOM)
    return tuple(  # type: ignore[return-value]
        balances.get((asset, kind), 0)
        for kind in (AccountKind.MAIN, AccountKind.INFLIGHT, AccountKind.SOLD)
    )


async def _agree(rig: Rig) -> None:
    await assert_ledger_ok(rig.core)
    assert (await rig.stats())["delivered"] == await rig.delivered_count()


async def test_success_captures_and_tells_retailer_and_customer(rig: Rig) -> None:
    shop = await _shop(rig)
    topup = await rig.wait((await _top_up(rig, shop, 0)).id)
    assert topup.state == TopupState.DELIVERED and topup.sends == 1
    assert (await rig.stats(topup.id))["sends_by_reference"] == 1
    assert topup.provider_ref is not None
    assert await _stock(rig, shop) == (STOCK - 5_000, 0, 5_000)
    await _agree(rig)
    [to_shop] = await rig.wait_sms(shop.msisdn)
    assert "KES 50 airtime to 0712345670 delivered" in to_shop["message"]
    assert topup.id in to_shop["message"] and "Stock left KES 950" in to_shop["message"]
    [receipt] = await rig.wait_sms("+254712345670")
    assert f"from {shop.name}" in receipt["message"]


async def test_decline_releases_and_tells_only_the_retailer(rig: Rig) -> None:
    shop = await _shop(rig)
    topup = await rig.wait((await _top_up(rig, shop, 1)).id)
    assert topup.state == TopupState.FAILED
    assert await _stock(rig, shop) == (STOCK, 0, 0)
    [to_shop] = await rig.wait_sms(shop.msisdn)
    assert "FAILED, nothing was charged" in to_shop["message"]
    assert await rig.sms("+254712345671") == []
    await _agree(rig)


async def test_timeout_then_status_says_delivered_captures(rig: Rig) -> None:
    shop = await _shop(rig)
    topup_id = (await _top_up(rig, shop, 2)).id
    unknown = await rig.wait(topup_id, states=frozenset({TopupState.UNKNOWN}))
    assert await _stock(rig, shop) == (STOCK - 5_000, 5_000, 0)  # held, not released
    assert unknown.unknown_since is not None
    topup = await rig.wait(topup_id)
    assert topup.state == TopupState.DELIVERED and topup.checks >= 1
    assert await _stock(rig, shop) == (STOCK - 5_000, 0, 5_000)
    stats = await rig.stats(topup_id)  # found out by status queries, never sent again
    assert (stats["sends_by_reference"], stats["deliveries_by_reference"]) == (1, 1)
    await _agree(rig)


async def test_timeout_then_status_says_failed_releases(rig: Rig) -> None:
    shop = await _shop(rig)
    topup = await rig.wait((await _top_up(rig, shop, 3)).id)
    assert topup.state == TopupState.FAILED and topup.checks >= 1
    assert await _stock(rig, shop) == (STOCK, 0, 0)
    await _agree(rig)


async def test_5xx_then_success_with_the_same_reference_delivers_once(rig: Rig) -> None:
    shop = await _shop(rig)
    topup = await rig.wait((await _top_up(rig, shop, 4)).id)
    assert topup.state == TopupState.DELIVERED and topup.sends == 2
    stats = await rig.stats(topup.id)
    assert stats["deliveries_by_reference"] == 1 and stats["errors_5xx"] == 1
    assert stats["sends_by_reference"] == 2  # the 503, looked up (nothing), then sent again
    await _agree(rig)


async def test_bundle_goes_the_same_way(rig: Rig) -> None:
    shop = await _shop(rig)
    sent = await confirm_topup(
        rig.core,
        rig.queue,
        party_id=shop.id,
        msisdn=number(0),
        product_code="safaricom-ke:data-1gb-7d",
        channel="test",
    )
    topup = await rig.wait(sent.id)
    assert topup.state == TopupState.DELIVERED
    assert await _stock(rig, shop) == (STOCK - 25_000, 0, 25_000)
    [receipt] = await rig.wait_sms("+254712345670")
    assert receipt["message"].startswith(  # the bundle by name, its price beside it
        f"You received the 1GB 7 days bundle (KES 250) from {shop.name}. Ref {topup.id}."
    )
    [to_shop] = await rig.wait_sms(shop.msisdn)
    assert "the 1GB 7 days bundle (KES 250) to 0712345670 delivered" in to_shop["message"]
    await _agree(rig)


async def test_crash_between_commit_and_enqueue_is_swept(rig_no_worker: Rig) -> None:
    """The request commits, the process dies before enqueueing: only the row knows. The
    sweeper (run at the worker's start) finds it and the worker delivers it, once."""
    from core.services.topups import request_topup
    from core.worker import build_worker, run_worker

    rig = rig_no_worker
    shop = await _shop(rig)
    orphan = await request_topup(
        rig.core, party_id=shop.id or 0, msisdn=number(0), amount_minor=5_000, channel="test"
    )
    await asyncio.sleep(rig.settings.sweeper_stale_s + 0.2)
    worker = build_worker(rig.settings, redis_url=rig.settings.redis_url, handle_signals=False)
    task = asyncio.create_task(run_worker(worker))
    try:
        topup = await rig.wait(orphan.id)
    finally:
        worker.handle_sig(signal.SIGUSR1)
        await task
    assert topup.state == TopupState.DELIVERED
    stats = await rig.stats(orphan.id)
    assert (stats["sends_by_reference"], stats["deliveries_by_reference"]) == (1, 1)
    await _agree(rig)


async def test_a_rerun_after_an_unrecorded_send_looks_it_up_and_sends_nothing(
    rig_no_worker: Rig,
) -> None:
    """A worker sent the top-up and died before recording it: the provider has the reference,
    our row says nothing was sent. The job's next run asks the provider first and finishes from
    its answer; AirGate sends nothing more (the sandbox counts every send of the reference, so a
    blind resend shows even though the sandbox would answer it with the first transaction)."""
    from core.providers.port import TopupOrder
    from core.providers.reloadly import ReloadlyProvider
    from core.services.topups import request_topup
    from core.worker import build_worker, run_worker

    rig = rig_no_worker
    shop = await _shop(rig)
    topup = await request_topup(
        rig.core, party_id=shop.id or 0, msisdn=number(0), amount_minor=5_000, channel="test"
    )
    operator_ref = (await rig.core.catalog.get()).operator_ref(
        topup.operator_code, provider="reloadly", bundle=False
    )
    provider = ReloadlyProvider.from_settings(rig.settings)
    try:  # the dead worker's send, through the same adapter
        await provider.send_topup(
            TopupOrder(
                reference=topup.id, msisdn=topup.msisdn, country="KE",
                operator=topup.operator_code, operator_ref=operator_ref, amount_minor=5_000,
                currency="KES",
            )
        )  # fmt: skip
    finally:
        await provider.close()
    await rig.queue.deliver(topup.id, sends=0, checks=0, fresh=False)
    worker = build_worker(rig.settings, redis_url=rig.settings.redis_url, handle_signals=False)
    task = asyncio.create_task(run_worker(worker))
    try:
        done = await rig.wait(topup.id)
    finally:
        worker.handle_sig(signal.SIGUSR1)
        await task
    stats = await rig.stats(topup.id)
    assert (stats["sends_by_reference"], stats["deliveries_by_reference"]) == (1, 1)
    assert done.state == TopupState.DELIVERED and done.sends == 0
    await _agree(rig)
