"""The job queue on a Sentinel-watched Redis whose primary is SIGKILLed in the middle of a run.

Real processes throughout: a primary, its replica and three sentinels (tests/redis_sentinel.py),
two ``airgate worker`` on ``AIRGATE_QUEUE_REDIS_URL=redis+sentinel://…``, the sandbox aggregator
over HTTP and PostgreSQL. Top-ups are confirmed in a stream; a third of the way in the primary is
killed and the sentinels promote the replica; once all are final it is restarted, comes back as
the new primary's replica, and more top-ups are claimed with a replica acknowledging each claim
again. Every top-up must end final, each reference must reach the aggregator exactly once, and
the ledger and the shops' stock must add up: a job lost with the old primary is re-enqueued by
the sweeper from its SQL row, a job re-run asks the aggregator before it sends.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import col

from core.jobs.queue import JobQueue
from core.jobs.runner import UNREPLICATED_PAUSE_S
from core.jobs.scripts import CLAIMS_KEY_PREFIX
from core.ledger import account_balances
from core.models import AccountKind, Party, Topup, TopupState
from core.models.topup import FINAL_STATES
from core.money import airtime_asset
from core.services.topups import confirm_topup
from sandbox.config import SandboxConfig
from tests.helpers import (
    SAFARICOM,
    assert_ledger_ok,
    chain,
    eventually,
    give_retailer_stock,
    killed_at_exit,
)
from tests.lifecycle.conftest import Rig
from tests.lifecycle.test_crash import start_worker, worker_env, worker_logs, workers_up
from tests.redis_sentinel import SentinelSet, sentinel_set, wait_ready

TOPUPS = 150
KILL_AFTER = 50  # confirmed top-ups before the primary dies
AFTER = 20  # confirmed once the old primary is back, as the new one's replica
SHOPS = 4
STOCK = 100_000  # KES 1,000 a shop
DIGITS = "00000115"  # the sandbox's last-digit rules: 0 delivered, 1 declined, 5 slow (1.5 s)
PASSWORD = "queue-redis-secret-5517"  # in the URL the workers get: never in a log line

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    """Every answer 100 ms late, so sends are in flight when the primary dies."""
    return SandboxConfig(hang_s=5.0, settle_s=1.5, slow_ms=1500, latency_ms=100, seed=7)


def amount(i: int) -> int:
    return 1_000 + 100 * (i % 10)


async def test_queue_survives_a_sentinel_failover_with_nothing_lost_or_sent_twice(
    rig_no_worker: Rig, tmp_path: Path
) -> None:
    rig = rig_no_worker
    distributor, shops = await chain(rig.core, retailers=SHOPS)
    for i, shop in enumerate(shops):
        await give_retailer_stock(rig.core, distributor, shop, STOCK, f"r{i}")
    with sentinel_set(tmp_path / "redis", password=PASSWORD) as redis_set:
        await wait_ready(redis_set)
        env = {**worker_env(rig, tmp_path), "AIRGATE_QUEUE_REDIS_URL": redis_set.url}
        queue = await JobQueue.connect(redis_set.url)
        try:
            with (
                killed_at_exit(start_worker(env, tmp_path)) as one,
                killed_at_exit(start_worker(env, tmp_path)) as two,
            ):
                await workers_up(tmp_path, one, two)
                ids, killed_at, promoted_s = await _stream(rig, queue, shops, redis_set)
                await _all_final(rig, ids)
                rejoined_s = await _old_primary_rejoins(redis_set)
                unreplicated = worker_logs(tmp_path).count("worker.claim_not_replicated")
                for i in range(TOPUPS, TOPUPS + AFTER):  # claims wait for the replica again
                    ids.append(await _confirm(rig, queue, shops, i))
                topups = await _all_final(rig, ids)
                assert worker_logs(tmp_path).count("worker.claim_not_replicated") == unreplicated
                for worker in (one, two):
                    worker.send_signal(signal.SIGTERM)
                assert (one.wait(30), two.wait(30)) == (0, 0)
            reclaimed = await _reclaimed(redis_set)
        finally:
            await queue.close()
    await _assert_once_each(rig, topups)
    await _assert_stock(rig, shops, topups)
    logs = worker_logs(tmp_path)
    assert PASSWORD not in logs
    assert not [t.msisdn for t in topups if t.msisdn in logs or t.msisdn[1:] in logs]
    late = max((t.final_at - t.created_at).total_seconds() for t in topups if t.final_at)
    print(
        f"\nfailover: replica promoted {promoted_s:.2f} s after the kill; "
        f"{reclaimed} job(s) claimed again, "
        f"{len(re.findall('sweeper.resumed', logs))} sweep(s) resumed top-ups, "
        f"{len(re.findall('worker.redis_unavailable', logs))} failed poll(s), "
        f"slowest top-up {late:.1f} s (killed at {killed_at:.1f} s into the stream); "
        f"the old primary back as a replica {rejoined_s:.1f} s after its restart"
    )


async def _stream(
    rig: Rig, queue: JobQueue, shops: list[Party], redis_set: SentinelSet
) -> tuple[list[str], float, float]:
    """Confirm TOPUPS top-ups ~25 a second; SIGKILL the primary after KILL_AFTER. Returns the ids,
    when the kill was (s into the stream) and how long the sentinels took to name the replica."""
    ids: list[str] = []
    started = time.monotonic()
    killed = 0.0
    promoted: asyncio.Task[float] | None = None
    for i in range(TOPUPS):
        if i == KILL_AFTER:
            redis_set.kill(redis_set.primary_port)
            killed = time.monotonic()
            promoted = asyncio.create_task(_promotion(redis_set, killed))
        ids.append(await _confirm(rig, queue, shops, i))
        await asyncio.sleep(0.04)
    assert promoted is not None
    return ids, killed - started, await promoted


async def _confirm(rig: Rig, queue: JobQueue, shops: list[Party], i: int) -> str:
    topup = await confirm_topup(
        rig.core, queue, party_id=shops[i % SHOPS].id or 0,
        msisdn=f"0711{i:05d}{DIGITS[i % len(DIGITS)]}", amount_minor=amount(i), channel="test",
    )  # fmt: skip
    return topup.id


async def _old_primary_rejoins(redis_set: SentinelSet) -> float:
    """Restart the killed primary; the sentinels make it the new primary's replica. Returns how
    long that took, then waits out the workers' pause on waiting for replicas."""
    restarted = time.monotonic()
    redis_set.restart(redis_set.primary_port)

    async def replica_online() -> bool:
        info = await redis_set.replication(redis_set.replica_port)
        return isinstance(info.get("slave0"), dict) and info["slave0"]["state"] == "online"

    await eventually(replica_online, what="the old primary rejoined as a replica", timeout_s=60)
    rejoined = time.monotonic() - restarted
    await asyncio.sleep(UNREPLICATED_PAUSE_S + 1)
    return rejoined


async def _promotion(redis_set: SentinelSet, killed: float) -> float:

    async def moved() -> bool:
        return await redis_set.master_port() == redis_set.replica_port

    await eventually(moved, what="the sentinels promoted the replica", timeout_s=30)
    return time.monotonic() - killed


async def _all_final(rig: Rig, ids: list[str]) -> list[Topup]:
    async def final() -> list[Topup] | None:
        async with rig.core.sessions() as session:
            rows = list(
                (await session.execute(select(Topup).where(col(Topup.id).in_(ids)))).scalars()
            )
        return rows if all(t.state in FINAL_STATES for t in rows) else None

    found = await eventually(final, what="every top-up final", timeout_s=120, every_s=0.5)
    assert len(found) == len(ids)
    return found


async def _reclaimed(redis_set: SentinelSet) -> int:
    """Job ids claimed more than once, read on the promoted replica: re-runs, and the sweeper's
    copies of jobs that finished between its query and its enqueue (they find the row final)."""
    client = redis_set.data_client(redis_set.replica_port)
    try:
        keys = [k async for k in client.scan_iter(f"{CLAIMS_KEY_PREFIX}*", count=1000)]
        counts = [int(v) for v in await client.mget(keys)] if keys else []
    finally:
        await client.aclose()
    return sum(1 for n in counts if n > 1)


async def _assert_once_each(rig: Rig, topups: list[Topup]) -> None:
    assert {t.state for t in topups} <= {TopupState.DELIVERED, TopupState.FAILED}, {
        t.state for t in topups
    }
    for topup in topups:
        stats = await rig.stats(topup.id)
        assert stats["sends_by_reference"] == 1, (topup.id, stats)
        delivered = 1 if topup.state == TopupState.DELIVERED else 0
        assert stats["deliveries_by_reference"] == delivered, (topup.id, stats)
    totals = await rig.stats()
    assert totals["double_deliveries"] == 0 and totals["duplicates"] == 0, totals
    assert totals["delivered"] == await rig.delivered_count()
    await assert_ledger_ok(rig.core)


async def _assert_stock(rig: Rig, shops: list[Party], topups: list[Topup]) -> None:
    """Each shop: what was delivered is sold, nothing is held, the rest is still its stock."""
    asset = airtime_asset(SAFARICOM)
    for shop in shops:
        sold = sum(
            t.amount_minor
            for t in topups
            if t.party_id == shop.id and t.state == TopupState.DELIVERED
        )
        async with rig.core.sessions() as session:
            balances = await account_balances(session, shop.id or 0)
        got = tuple(
            balances.get((asset, kind), 0)
            for kind in (AccountKind.MAIN, AccountKind.INFLIGHT, AccountKind.SOLD)
        )
        assert got == (STOCK - sold, 0, sold), (shop.id, got)
