"""Redis for the hot path: :class:`PipelinedRedis` (a client whose commands given together share a
socket write) and :class:`Lua` (every Lua script of AirGate, run one way).

Everything here that leans on redis-py beyond its public client is pinned by
tests/integration/test_redis_pipeline.py: a connection's ``_writer`` and ``_reader`` streams,
``ConnectionPool.get_available_connection``, ``read_response`` and its errors, and the bytes
``pack_command`` sends (which :func:`_pack` writes itself, for a fraction of its CPU). A redis-py
upgrade that changes any of them fails those tests, not a hop in production.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

if TYPE_CHECKING:
    from core.redis import Client

Arg = str | bytes | int


class ScriptClient(Protocol):
    """What :class:`Lua` needs of a client: redis-py's ``Redis`` (and arq's), its
    ``RedisCluster``, :class:`PipelinedRedis` and :class:`ClusterHot` all are one."""

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any: ...

    def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> Any: ...


class HotClient(ScriptClient, Protocol):
    """What the hot path (sessions, the API's rate limit and idempotency) asks of Redis: each
    command is sent when called and its reply awaited later (or never)."""

    def get(self, name: str) -> Awaitable[Any]: ...

    def execute_command(self, *args: Arg) -> Awaitable[Any]: ...


def hot_client(redis: Client) -> HotClient:
    """The hot path's client on ``redis``: its commands pipelined on one connection of a single
    server's pool, or, on a Redis Cluster (whose keys live on several servers), the cluster
    client's own commands, each sent at once as a task."""
    if isinstance(redis, aioredis.Redis):
        return PipelinedRedis(redis.connection_pool)
    return ClusterHot(redis)


class Lua:
    """A Lua script, built once (at import) and run by EVALSHA on any :class:`ScriptClient`; its
    text goes to the server only when the server lacks it (first use, a restart, SCRIPT FLUSH).

    Why not redis-py's ``register_script``: its ``Script`` is bound to one client, and calling it
    costs as much CPU as the command's reply on the session store's hot path."""

    __slots__ = ("source", "sha")
    every: ClassVar[list[Lua]] = []  # every script made: what the slot test checks

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        Lua.every.append(self)

    async def __call__(self, client: ScriptClient, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:  # EVAL runs it and keeps it, on whichever node holds the keys
            return await client.eval(self.source, len(keys), *keys, *args)


class PipelinedRedis:
    """The commands the session store runs on every hop (GET, EVALSHA), on one connection of
    ``pool``: every command given in one turn of the event loop is written in one go, and the
    replies are handed back in order. Reads like a Redis client: ``await hot.get(key)``.

    A command is sent when it is called, not when it is awaited: what a command returns is its
    reply in flight (an ``asyncio.Future``), so a caller can ask Redis, ask the database, then
    read both (the engine does, on a journey's first hop). Not awaiting it is fine: the reply is
    read and dropped. Replies are not decoded (bytes), errors are redis-py's own (a Redis error
    reply raises its ``ResponseError``, ``NoScriptError`` included; a broken connection
    ``ConnectionError``).

    Invariant: the n-th reply read on a connection belongs to the n-th command written on it.
    Every command written has its future queued in the same order, and a connection that fails
    fails every future still queued on it; the next command goes out on a new connection.

    Why: at 32 USSD sessions a turn of the loop gives several commands, and they share one
    socket write and one read instead of one of each per command (the writes were 13 % of
    ``serve``'s CPU), without redis-py's checkout of a connection per command. With nothing in
    flight a command is written at once, so an idle server adds no wait. A caller that stops
    waiting (cancelled) leaves its reply to be read and dropped, so the order holds.

    The connection is checked out of ``pool`` for good, so closing the client (or the pool)
    closes it. One the server closed while idle (its ``timeout``, a restart) is seen before
    the next command, from its reader's end of file, and replaced; commands given while a
    connection opens wait for it, in order. A reader task runs only while replies are awaited.
    """

    def __init__(self, pool: aioredis.ConnectionPool) -> None:
        self._pool = pool
        self._line: _Line | None = None
        self._opening: asyncio.Task[None] | None = None
        self._queued: list[tuple[tuple[Arg, ...], asyncio.Future[Any]]] = []

    def get(self, name: str) -> asyncio.Future[Any]:
        return self.execute_command("GET", name)

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Arg) -> asyncio.Future[Any]:
        return self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)

    def eval(self, script: str, numkeys: int, *keys_and_args: Arg) -> asyncio.Future[Any]:
        return self.execute_command("EVAL", script, numkeys, *keys_and_args)

    def execute_command(self, *args: Arg) -> asyncio.Future[Any]:
        """Send ``args`` now (or with the rest of this turn's commands, or once a connection is
        open) and return its reply in flight."""
        line = self._line
        if self._opening is None and line is not None and line.usable():
            return line.send(args)
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        self._queued.append((args, reply))
        if self._opening is None:  # rare: the first command, or after a connection closed
            self._opening = loop.create_task(self._open())
        return reply

    async def _open(self) -> None:
        try:
            old = self._line
            if old is not None and not old.usable():  # closed by the server while idle, or failed
                old.fail(RedisConnectionError("Connection closed by server."))
                if old.reader is None:  # else its reader gives it back
                    await old.close()
            line = old if old is not None and old.usable() else await _Line.open(self._pool)
            self._line = line
        except BaseException as exc:  # the commands waiting for it fail with its error
            self._opening = None
            queued, self._queued = self._queued, []
            error = exc if isinstance(exc, Exception) else RedisConnectionError(repr(exc))
            for _args, reply in queued:
                _settle(reply, error)
            if not isinstance(exc, Exception):
                raise
            return
        self._opening = None
        queued, self._queued = self._queued, []
        for args, reply in queued:
            line.send(args, reply)


class ClusterHot:
    """:class:`PipelinedRedis`'s interface on a Redis Cluster client: each command is sent at
    once (a task) and its reply is awaited later or never. No pipelining: the keys of one turn
    of the loop live on several nodes, and the cluster client keeps a connection pool per node.
    """

    def __init__(self, cluster: RedisCluster) -> None:
        self._cluster = cluster

    def get(self, name: str) -> asyncio.Future[Any]:
        return self.execute_command("GET", name)

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Arg) -> asyncio.Future[Any]:
        return self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)

    def eval(self, script: str, numkeys: int, *keys_and_args: Arg) -> asyncio.Future[Any]:
        return self.execute_command("EVAL", script, numkeys, *keys_and_args)

    def execute_command(self, *args: Arg) -> asyncio.Future[Any]:
        sent = asyncio.ensure_future(self._cluster.execute_command(*args))
        sent.add_done_callback(_retrieved)  # a reply nobody awaited: its error is not logged
        return sent


def _retrieved(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


class _Line:
    """One connection of a :class:`PipelinedRedis` and the replies it owes, in order."""

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

    @classmethod
    async def open(cls, pool: aioredis.ConnectionPool) -> _Line:
        conn = pool.get_available_connection()  # type: ignore[no-untyped-call]
        try:
            await conn.connect()
        except BaseException:
            await pool.release(conn)
            raise
        return cls(conn, pool)

    def usable(self) -> bool:
        return not self.dead and self.conn.is_connected and not _closed_by_server(self.conn)

    def send(
        self, args: tuple[Arg, ...], reply: asyncio.Future[Any] | None = None
    ) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        if reply is None:
            reply = loop.create_future()
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


def _pack(conn: AbstractConnection, args: tuple[Arg, ...]) -> list[bytes]:
    """The bytes ``conn.pack_command(*args)`` sends, for text, bytes and int arguments, in one
    buffer and a fraction of its CPU."""
    encoding, errors = conn.encoder.encoding, conn.encoder.encoding_errors
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode(encoding, errors)
        else:
            data = b"%d" % arg
        parts += (b"$%d\r\n" % len(data), data, b"\r\n")
    return [b"".join(parts)]
