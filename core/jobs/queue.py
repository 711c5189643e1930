"""Enqueueing jobs, after the commit that made them due; the queue's Redis client.

Invariant: a job id is a function of the row's progress (``{topup}:{sends}:{checks}``), so the
sweeper re-enqueueing a job that is still queued is refused by arq and nothing runs twice; a job
that could not be enqueued (Redis away, or lost in a failover) is found again by the sweeper from
the SQL row.

The queue may live on a Redis of its own (AIRGATE_QUEUE_REDIS_URL), a Sentinel-watched primary
among them (``redis+sentinel://``): each new connection asks the sentinels where the primary is,
so after a failover the next command goes to the promoted replica (docs/OPERATIONS.md).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.jobs import scripts
from core.logging import get_logger
from core.redis import Timeouts, client_options
from core.setting_values import SENTINEL_SCHEME, sentinel_url

log = get_logger(__name__)

DELIVER = "deliver"
NOTIFY = "notify"
BROADCAST = "broadcast"
CALLBACK = "callback"
QUEUE = "airgate:queue"


# Starting up while Redis is away: tried this often, a second apart (as arq's create_pool does).
CONNECT_TRIES = 5
UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)  # Redis away, not a bug


def queue_client(url: str, timeouts: Timeouts | None = None, *, wait_ms: int = 0) -> ArqRedis:
    """An arq client for the queue at ``url`` (redis://, rediss://, unix:// or
    redis+sentinel://), not yet connected, with AirGate's timeouts and retry (core/redis.py):
    a pooled connection to a primary that died is retried once on a new connection, which on
    Sentinel asks where the primary is now. ``wait_ms``: the longest WAIT it will send."""
    t = timeouts or Timeouts()
    options = client_options(replace(t, read_s=t.read_s + wait_ms / 1000))
    if not url.startswith(f"{SENTINEL_SCHEME}:"):
        client: ArqRedis = ArqRedis.from_url(url, **options)
    else:
        where = sentinel_url(url)
        asking = {"socket_timeout": t.read_s, "socket_connect_timeout": t.connect_s}
        sentinels = Sentinel(where.sentinels, sentinel_kwargs=asking)  # type: ignore[no-untyped-call]
        primary: _SentinelArqRedis = sentinels.master_for(
            where.master,
            redis_class=_SentinelArqRedis,
            db=where.db,
            username=where.username,
            password=where.password,
            **options,
        )
        primary.sentinels = sentinels.sentinels
        client = primary
    client.default_queue_name = QUEUE
    return client


class _SentinelArqRedis(ArqRedis):
    """The primary's client; closing it closes the clients of the sentinels it asks too."""

    sentinels: list[Redis] = []  # noqa: RUF012 (set once, per instance, by queue_client)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        for sentinel in self.sentinels:
            await sentinel.aclose()


async def connect_client(
    url: str, timeouts: Timeouts | None = None, *, wait_ms: int = 0, tries: int = CONNECT_TRIES
) -> ArqRedis:
    """:func:`queue_client`, once it answers (a PING), tried ``tries`` times a second apart."""
    client = queue_client(url, timeouts, wait_ms=wait_ms)
    attempt = 1
    while True:
        try:
            await client.ping()
            return client
        except UNAVAILABLE as exc:
            if attempt >= tries:
                await client.aclose()
                raise
            log.warning("queue.redis_unavailable", error=type(exc).__name__, attempt=attempt)
            await asyncio.sleep(1)
            attempt += 1


def delivery_job_id(topup_id: str, sends: int, checks: int) -> str:
    return f"{topup_id}:{sends}:{checks}"


class JobQueue:
    def __init__(self, redis: ArqRedis, *, owned: bool = True) -> None:
        self.redis = redis
        self.owned = owned  # closed with the queue; else another's pool, closed by its owner

    @classmethod
    async def connect(cls, url: str) -> JobQueue:
        return cls(await connect_client(url))

    @classmethod
    def on_pool(cls, pool: ConnectionPool) -> JobQueue:
        """A queue on an existing connection pool, without connecting: ``airgate serve`` starts
        (and reports itself degraded on /health) while Redis is away."""
        return cls(ArqRedis(pool, default_queue_name=QUEUE), owned=False)

    async def close(self) -> None:
        if self.owned:
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
