"""arq's worker as AirGate runs it: each batch of due jobs claimed in one round trip
(core/jobs/scripts.py) with a claim count per job, the claim waiting for a replica when asked to
(``AIRGATE_QUEUE_WAIT_REPLICAS``), a poll that meets its Redis away retried, and a stop that always
ends the poll loop. What the jobs do is core/worker.py's."""

from __future__ import annotations

import asyncio
import signal
import time
from functools import partial
from typing import Any

from arq.worker import Worker

from core.jobs import scripts
from core.jobs.queue import UNAVAILABLE, connect_client
from core.logging import get_logger
from core.redis import Timeouts

log = get_logger(__name__)


class QueueWorker(Worker):
    """arq's worker on the queue at ``queue_url``, claiming each batch of due jobs in one round
    trip (core/jobs/scripts.py), riding out its Redis going away."""

    def __init__(
        self, *, queue_url: str, timeouts: Timeouts, wait_replicas: int, wait_ms: int, **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.queue_url, self.timeouts = queue_url, timeouts
        self.wait_replicas, self.wait_ms = wait_replicas, wait_ms
        self.unreplicated_until = 0.0  # no replica acknowledged: claims do not wait till then
        self.claims: dict[str, int] = self.ctx.setdefault("claims", {})
        self._stopping: asyncio.Task[None] | None = None  # _until_done, kept from the collector

    async def main(self) -> None:
        if self._pool is None:  # arq's create_pool has no time-outs on Sentinel
            self._pool = await connect_client(
                self.queue_url, self.timeouts, wait_ms=self.wait_ms if self.wait_replicas else 0
            )
        await super().main()

    def handle_sig(self, signum: signal.Signals) -> None:
        super().handle_sig(signum)
        main = self.main_task
        if main is not None and not main.done():
            self._stopping = self.loop.create_task(_until_done(main))

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except UNAVAILABLE as exc:
            log.warning("worker.redis_unavailable", error=type(exc).__name__)
            await asyncio.sleep(REDIS_RETRY_S)

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        # One of ours still running whose in-progress mark is gone (lost in a failover): another
        # worker may take it, but this one never runs one job id twice at once.
        job_ids = [i for i in job_ids if i.decode() not in self.tasks]
        claim = await scripts.claim(
            self.pool,
            queue=self.queue_name,
            job_ids=job_ids,
            limit=self.max_jobs - self.job_counter,
            in_progress_ms=int(self.in_progress_timeout_s * 1000),
            replicas=self.wait_replicas if time.monotonic() >= self.unreplicated_until else 0,
            wait_ms=self.wait_ms,
        )
        if not claim.replicated:
            # Run them anyway (the primary's min-replicas-to-write is the operator's say), and
            # do not wait again for a while: a replica that did not answer now (none left after
            # a failover, until the old primary rejoins) would cost every claim wait_ms.
            self.unreplicated_until = time.monotonic() + UNREPLICATED_PAUSE_S
            log.warning("worker.claim_not_replicated", jobs=len(claim.jobs))
        for job in claim.jobs:  # as arq's start_jobs does after its own claim
            if job.claims > 1:  # a re-run: its worker died, or its end was lost with a primary
                log.warning("worker.job_claimed_again", job_id=job.job_id, claims=job.claims)
            await self.sem.acquire()
            self.job_counter += 1
            self.claims[job.job_id] = job.claims
            task = self.loop.create_task(self.run_job(job.job_id, job.score))
            task.add_done_callback(partial(self._ended, job.job_id))
            self.tasks[job.job_id] = task

    def _ended(self, job_id: str, _task: asyncio.Task[None]) -> None:
        self.claims.pop(job_id, None)
        self._release_sem_dec_counter_on_complete()


REDIS_RETRY_S = 0.5  # between polls while the queue's Redis does not answer
STOP_AGAIN_S = 0.5


async def _until_done(main: asyncio.Task[None]) -> None:
    """Cancel ``main`` again until it ends: a stop's cancellation was seen swallowed on its way
    through the poll loop (arq 0.26 on Python 3.11; about one stop in four in
    tests/lifecycle/test_paths.py's re-run test), and the loop then polled on for ever."""
    while not main.done():
        await asyncio.sleep(STOP_AGAIN_S)
        if not main.done():
            main.cancel()


UNREPLICATED_PAUSE_S = 10.0
