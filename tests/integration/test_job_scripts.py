"""arq's enqueue and claim in one round trip: arq's semantics, arq's keys (real Redis)."""

from __future__ import annotations

import asyncio

from arq.constants import in_progress_key_prefix
from arq.jobs import Job, JobStatus

from core.jobs import scripts
from core.jobs.queue import connect_client

QUEUE = "airgate:test-queue"


async def test_enqueue_is_arq_compatible_and_refuses_a_known_id(redis_url: str) -> None:
    redis = await connect_client(redis_url)
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
    redis = await connect_client(redis_url)
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
        started = [job.job_id for claim in claims for job in claim.jobs]
        assert sorted(started) == sorted(ids)  # every due job once; the deferred one not yet
        assert all(len(claim.jobs) <= 150 and claim.replicated for claim in claims)
        assert {job.claims for claim in claims for job in claim.jobs} == {1}
        assert await redis.exists(in_progress_key_prefix + "J0")
        assert not await redis.exists(in_progress_key_prefix + "L")
    finally:
        await redis.aclose()


async def test_a_claim_counts_its_job_ids_runs_and_waits_for_replicas(redis_url: str) -> None:
    """A re-claimed job id says so (claims 2) whatever arq's try count says; a claim asking for a
    replica this server lacks waits ``wait_ms`` and says it was not replicated, but claims."""
    redis = await connect_client(redis_url)
    try:
        await scripts.enqueue(redis, queue=QUEUE, function="f", args=(), job_id="R")
        first = await scripts.claim(
            redis, queue=QUEUE, job_ids=[b"R"], limit=1, in_progress_ms=10_000
        )
        await redis.delete(in_progress_key_prefix + "R")  # its worker died: the mark lapsed
        started = asyncio.get_running_loop().time()
        again = await scripts.claim(
            redis, queue=QUEUE, job_ids=[b"R"], limit=1, in_progress_ms=10_000,
            replicas=1, wait_ms=100,
        )  # fmt: skip
        waited = asyncio.get_running_loop().time() - started
        assert [job.claims for job in first.jobs] == [1] and first.replicated
        assert [job.claims for job in again.jobs] == [2] and not again.replicated
        assert 0.09 < waited < 2
        assert 0 < await redis.pttl(scripts.CLAIMS_KEY_PREFIX + "R") <= scripts.CLAIMS_TTL_MS
    finally:
        await redis.aclose()
