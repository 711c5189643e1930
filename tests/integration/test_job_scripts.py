"""arq's enqueue and claim in one round trip: arq's semantics, arq's keys (real Redis)."""

from __future__ import annotations

import asyncio

from arq.connections import create_pool
from arq.constants import in_progress_key_prefix
from arq.jobs import Job, JobStatus

from core.jobs import scripts
from core.jobs.queue import redis_settings

QUEUE = "airgate:test-queue"


async def test_enqueue_is_arq_compatible_and_refuses_a_known_id(redis_url: str) -> None:
    redis = await create_pool(redis_settings(redis_url), default_queue_name=QUEUE)
    try:
        assert await scripts.enqueue(
            redis, queue=QUEUE, function="deliver", args=("T1", 0, 0, True), job_id="T1:0:0"
        )
        assert not await scripts.enqueue(
            redis, queue=QUEUE, function="deliver", args=("T1", 0, 0, True), job_id="T1:0:0"
        )
        job = Job("T1:0:0", redis, _queue_name=QUEUE)
        assert await job.status() == JobStatus.queued
        info = await job.info()
        assert info is not None and (info.function, info.args) == ("deliver", ("T1", 0, 0, True))
        # arq's own enqueue sees ours and refuses the same id.
        assert await redis.enqueue_job("deliver", _job_id="T1:0:0", _queue_name=QUEUE) is None
        deferred = await scripts.enqueue(
            redis, queue=QUEUE, function="deliver", args=(), job_id="T2", defer_ms=60_000
        )
        assert deferred and await Job("T2", redis, _queue_name=QUEUE).status() == JobStatus.deferred
    finally:
        await redis.aclose()


async def test_concurrent_claims_start_each_due_job_once(redis_url: str) -> None:
    redis = await create_pool(redis_settings(redis_url), default_queue_name=QUEUE)
    try:
        ids = [f"J{i}" for i in range(200)]
        for job_id in ids:
            await scripts.enqueue(redis, queue=QUEUE, function="f", args=(), job_id=job_id)
        await scripts.enqueue(
            redis, queue=QUEUE, function="f", args=(), job_id="L", defer_ms=9_000_000
        )
        wanted = [i.encode() for i in [*ids, "L"]]
        claims = await asyncio.gather(
            *(
                scripts.claim(redis, queue=QUEUE, job_ids=wanted, limit=150, in_progress_ms=10_000)
                for _ in range(4)
            )
        )
        started = [job_id for claim in claims for job_id, _score in claim]
        assert sorted(started) == sorted(ids)  # every due job once; the deferred one not yet
        assert all(len(claim) <= 150 for claim in claims)
        assert await redis.exists(in_progress_key_prefix + "J0")
        assert not await redis.exists(in_progress_key_prefix + "L")
    finally:
        await redis.aclose()
