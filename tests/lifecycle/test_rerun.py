"""A job id claimed a second time runs as a re-run (asks the aggregator before it sends) even when
arq's own try count says 1: what a Sentinel failover leaves when the claim reached the replica
and the rest of the run (arq's try count, the job's end) did not (core/jobs/scripts.py)."""

from __future__ import annotations

import asyncio
import signal

from arq.constants import in_progress_key_prefix, retry_key_prefix

from core.jobs.queue import delivery_job_id
from core.jobs.scripts import CLAIMS_KEY_PREFIX
from core.models import TopupState
from core.worker import build_worker, run_worker
from tests.helpers import eventually
from tests.lifecycle.conftest import Rig
from tests.lifecycle.test_paths import _agree, _shop, _top_up


async def test_a_job_claimed_again_with_its_try_count_lost_asks_before_it_sends(
    rig_no_worker: Rig,
) -> None:
    rig = rig_no_worker
    shop = await _shop(rig)
    workers = [
        build_worker(rig.settings, redis_url=rig.settings.redis_url, handle_signals=False)
        for _ in range(2)
    ]
    tasks = [asyncio.create_task(run_worker(worker)) for worker in workers]
    try:

        async def both_up() -> bool:
            return all("delivery" in worker.ctx for worker in workers)

        await eventually(both_up, what="both workers started", timeout_s=30)
        topup = await _top_up(rig, shop, 5)  # …5: delivered, answered 1.5 s late

        async def sent() -> bool:
            return (await rig.stats(topup.id))["sends_by_reference"] == 1

        await eventually(sent, what="the first run sent it", timeout_s=10, every_s=0.02)
        # The first run waits for the answer. As a failover can leave it: no in-progress mark
        # (lost, or lapsed), no try count; the job and its claim count are there. The other
        # worker takes it (a worker never runs a job id twice at once).
        job_id = delivery_job_id(topup.id, 0, 0)
        await rig.queue.redis.delete(in_progress_key_prefix + job_id, retry_key_prefix + job_id)
        done = await rig.wait(topup.id, timeout_s=20)
        claims = await rig.queue.redis.get(CLAIMS_KEY_PREFIX + job_id)
    finally:
        for worker in workers:
            worker.handle_sig(signal.SIGUSR1)
        await asyncio.gather(*tasks)
    assert claims == b"2"  # it did run twice
    assert done.state == TopupState.DELIVERED
    stats = await rig.stats(topup.id)
    assert (stats["sends_by_reference"], stats["deliveries_by_reference"]) == (1, 1), stats
    await _agree(rig)
