"""Enqueueing jobs, after the commit that made them due.

Invariant: a job id is a function of the row's progress (``{topup}:{sends}:{checks}``), so the
sweeper re-enqueueing a job that is still queued is refused by arq and nothing runs twice; a job
that could not be enqueued (Redis away) is found again by the sweeper from the SQL row.
"""

from __future__ import annotations

from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool
from redis.asyncio import ConnectionPool
from redis.exceptions import RedisError

from core.jobs import scripts
from core.logging import get_logger

log = get_logger(__name__)

DELIVER = "deliver"
NOTIFY = "notify"
BROADCAST = "broadcast"
CALLBACK = "callback"
QUEUE = "airgate:queue"


def redis_settings(url: str) -> RedisSettings:
    return RedisSettings.from_dsn(url)


def delivery_job_id(topup_id: str, sends: int, checks: int) -> str:
    return f"{topup_id}:{sends}:{checks}"


class JobQueue:
    def __init__(self, redis: ArqRedis) -> None:
        self.redis = redis

    @classmethod
    async def connect(cls, url: str) -> JobQueue:
        return cls(await create_pool(redis_settings(url), default_queue_name=QUEUE))

    @classmethod
    def on_pool(cls, pool: ConnectionPool) -> JobQueue:
        """A queue on an existing connection pool, without connecting: ``airgate serve`` starts
        (and reports itself degraded on /health) while Redis is away."""
        return cls(ArqRedis(pool, default_queue_name=QUEUE))

    async def close(self) -> None:
        await self.redis.aclose()

    async def deliver(
        self,
        topup_id: str,
        *,
        sends: int = 0,
        checks: int = 0,
        fresh: bool,
        defer_s: float = 0,
        snapshot: tuple[Any, ...] | None = None,
    ) -> bool:
        """Enqueue the next step of a top-up; False if it was already queued or Redis is away."""
        job_id = delivery_job_id(topup_id, sends, checks)
        return await self._enqueue(
            DELIVER, (topup_id, sends, checks, fresh, snapshot), job_id, defer_s=defer_s
        )

    async def notify(self, notification_id: int, *, attempts: int) -> bool:
        return await self._enqueue(NOTIFY, ([notification_id],), f"n{notification_id}:{attempts}")

    async def broadcast(self, broadcast_id: int, *, part: int = 0) -> bool:
        """Enqueue (a part of) a broadcast's sending; parts run one after another (a lease)."""
        return await self._enqueue(BROADCAST, (broadcast_id, part), f"bc{broadcast_id}:{part}")

    async def callback(self, delivery_id: int, *, attempts: int, defer_s: float = 0) -> bool:
        """Enqueue the next POST of an outcome callback (core/services/callbacks/sender.py)."""
        job_id = f"cb{delivery_id}:{attempts}"
        return await self._enqueue(CALLBACK, (delivery_id, attempts), job_id, defer_s=defer_s)

    async def _enqueue(
        self, function: str, args: tuple[Any, ...], job_id: str, *, defer_s: float = 0
    ) -> bool:
        try:
            return await scripts.enqueue(
                self.redis,
                queue=QUEUE,
                function=function,
                args=args,
                job_id=job_id,
                defer_ms=round(defer_s * 1000),
            )
        except (RedisError, OSError) as exc:
            log.warning("enqueue.failed", job_id=job_id, error=type(exc).__name__)
            return False
