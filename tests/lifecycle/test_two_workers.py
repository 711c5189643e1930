"""Two ``airgate worker`` processes on one queue deliver one batch of top-ups: each reaches the
sandbox once (sent once, delivered once), whichever worker took it."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from core.models import TopupState
from core.services.topups import confirm_topup
from tests.helpers import (
    assert_ledger_ok,
    chain,
    give_retailer_stock,
    killed_at_exit,
)
from tests.lifecycle.conftest import Rig
from tests.lifecycle.test_crash import start_worker, worker_env, workers_up

BATCH = 20


async def test_two_workers_deliver_a_batch_once_each(rig_no_worker: Rig, tmp_path: Path) -> None:
    rig = rig_no_worker
    distributor, shops = await chain(rig.core, retailers=4)
    for i, shop in enumerate(shops):
        await give_retailer_stock(rig.core, distributor, shop, 100_000, f"r{i}")
    env = worker_env(rig, tmp_path)
    with (
        killed_at_exit(start_worker(env, tmp_path)) as one,
        killed_at_exit(start_worker(env, tmp_path)) as two,
    ):
        await workers_up(tmp_path, one, two)
        sent = [
            await confirm_topup(
                rig.core, rig.queue, party_id=shops[i % 4].id or 0,
                msisdn=f"07123{i:04d}0", amount_minor=1_000 + 100 * i, channel="test",
            )
            for i in range(BATCH)
        ]  # fmt: skip
        done = await asyncio.gather(*(rig.wait(t.id, timeout_s=60) for t in sent))
        for worker in (one, two):
            worker.send_signal(signal.SIGTERM)
        assert (one.wait(30), two.wait(30)) == (0, 0)
    assert {t.state for t in done} == {TopupState.DELIVERED}
    for topup in sent:
        stats = await rig.stats(topup.id)
        assert (stats["sends_by_reference"], stats["deliveries_by_reference"]) == (1, 1), topup.id
    assert (await rig.stats())["double_deliveries"] == 0
    assert (await rig.stats())["delivered"] == await rig.delivered_count() == BATCH
    await assert_ledger_ok(rig.core)
