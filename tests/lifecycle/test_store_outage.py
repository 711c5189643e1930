"""A worker whose database is away: a delivery job is put back on the queue a few seconds later
(arq's Retry), logged as one line, instead of failing with a traceback and waiting for the sweeper
(found by the chaos run, tests/scale/: 60 tracebacks a worker in a 7 s PostgreSQL restart, every
top-up caught in it held for AIRGATE_SWEEPER_STALE_S more); its crons skip their round the same
way. Real arq workers in this process, the
real queue in Redis, the sandbox aggregator."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest
import structlog
from sqlalchemy import make_url

from core.jobs.queue import QUEUE, delivery_job_id
from core.models import TopupState
from core.services.topups import confirm_topup
from core.worker import build_worker, run_worker
from tests.e2e.conftest import free_port
from tests.helpers import eventually
from tests.lifecycle.conftest import Rig
from tests.lifecycle.test_paths import _shop, number


@pytest.fixture
def rig_overrides() -> dict[str, Any]:
    """No sweeper to rescue the job: only the retry can deliver it in this test's time."""
    return {"sweeper_stale_s": 3600}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # a server to be away
async def test_a_delivery_that_finds_the_database_away_is_tried_again_soon(
    rig_no_worker: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig = rig_no_worker
    shop = await _shop(rig)
    topup = await confirm_topup(
        rig.core, rig.queue, party_id=shop.id, msisdn=number(0), amount_minor=5_000,
        channel="test",
    )  # fmt: skip
    job_id = delivery_job_id(topup.id, 0, 0)
    redis = rig.queue.redis
    nowhere = make_url(rig.settings.database_url).set(port=free_port())  # refused: away
    away = rig.settings.model_copy(
        update={"database_url": nowhere.render_as_string(hide_password=False)}
    )
    worker = build_worker(away, redis_url=away.redis_url, handle_signals=False)
    with structlog.testing.capture_logs() as logged:
        task = asyncio.create_task(run_worker(worker))
        try:

            async def put_back() -> bool:
                score = await redis.zscore(QUEUE, job_id)  # due time, ms since the epoch
                tried = await redis.get(f"arq:retry:{job_id}")
                return score is not None and tried is not None and score > time.time() * 1000

            await eventually(put_back, what="the job put back on the queue, due later")

            async def crons_skipped() -> set[str]:
                return {e["task"] for e in logged if e.get("event") == "worker.cron_skipped"}

            await eventually(crons_skipped, what="a cron's round skipped")
        finally:
            worker.handle_sig(signal.SIGUSR1)
            await task
    lines = [e for e in logged if e.get("event") == "worker.store_unavailable"]
    assert lines and lines[0]["store"] == "database" and lines[0]["job"] == "deliver", logged
    assert "exc_info" not in lines[0]
    # A cron run at start-up (sweeper, morning reports, float poll) skipped its round, saying so
    # in a line; arq logged no job as failed.
    assert not [r for r in caplog.records if r.name == "arq.worker" and r.levelname == "ERROR"]
    assert (await rig.wait(topup.id, states=frozenset({TopupState.RESERVED}))).sends == 0

    # The database is back (a worker that reaches it): the job runs again within its back-off.
    worker = build_worker(rig.settings, redis_url=rig.settings.redis_url, handle_signals=False)
    task = asyncio.create_task(run_worker(worker))
    try:
        done = await rig.wait(topup.id, timeout_s=30)
    finally:
        worker.handle_sig(signal.SIGUSR1)
        await task
    assert done.state == TopupState.DELIVERED and done.sends == 1
    stats = await rig.stats(topup.id)
    assert (stats["sends_by_reference"], stats["deliveries_by_reference"]) == (1, 1), stats
