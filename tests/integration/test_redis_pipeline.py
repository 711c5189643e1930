"""``core.redis_pipeline`` (the session store's GET and EVALSHA, every Lua script) against
redis-py's own commands and the parts of redis-py it leans on,
in real Redis: the same replies and errors; commands given together share a write and still get
their own replies; a caller that stops waiting shifts nobody's reply; a connection the server
closed is replaced, and one that fails under commands fails them and is replaced too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from core.conversation.sessions import Session, SessionStore
from core.redis_pipeline import Lua, PipelinedRedis, _pack
from tests.helpers import eventually

REF_KEY = b"test-ref-key-0123456789abcdef0123"
USER = "+254700000042"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def _kill_others(redis: aioredis.Redis) -> int:
    """CLIENT KILL every connection of this database but the admin's own."""
    pool = redis.connection_pool
    admin_pool = aioredis.ConnectionPool(
        connection_class=pool.connection_class, **pool.connection_kwargs
    )
    admin = aioredis.Redis(connection_pool=admin_pool)
    killed = 0
    try:
        own, db = await admin.client_id(), str(pool.connection_kwargs.get("db", 0))
        for client in await admin.client_list():
            if int(client["id"]) != own and client["db"] == db:
                killed += await admin.client_kill_filter(_id=str(client["id"]))
    finally:
        await admin.aclose()
        await admin_pool.disconnect()
    return killed


async def test_replies_and_errors_are_redis_pys(redis: aioredis.Redis) -> None:
    pipe = PipelinedRedis(redis.connection_pool)
    value = "é" * 10 + '{"v":1}' + "x" * 7000  # past redis-py's 6 KB buffer cutoff
    await redis.set("k", value)
    assert await pipe.get("k") == await redis.get("k") == value.encode()
    assert await pipe.get("absent") is None
    script = "return {KEYS[1], ARGV[1], 7}"
    sha = await redis.script_load(script)
    assert await pipe.evalsha(sha, 1, "a", b"b") == [b"a", b"b", 7]
    with pytest.raises(NoScriptError):
        await pipe.evalsha("0" * 40, 0)
    with pytest.raises(ResponseError):
        await pipe.execute_command("GET", "k", "extra")  # wrong number of arguments
    assert await pipe.get("k") == value.encode()  # the connection is still good
    commands: list[tuple[str | bytes | int, ...]] = [
        ("GET", "k"),
        ("EVALSHA", sha, 1, "é" * 3, value, -12, 0),
        ("SET", "k", b"\xc3\xa9"),
    ]
    for args in commands:
        conn = redis.connection_pool.make_connection()  # type: ignore[no-untyped-call]
        assert _pack(conn, args) == [b"".join(conn.pack_command(*args))]


async def test_commands_given_together_share_writes_and_keep_their_replies(
    redis: aioredis.Redis,
) -> None:
    """300 commands from 300 tasks at once, errors among them: each gets its own reply, in far
    fewer socket writes than commands."""
    pipe = PipelinedRedis(redis.connection_pool)
    await redis.mset({f"k{i}": f"v{i}" for i in range(300)})
    await pipe.get("k0")  # the connection is open
    line: Any = pipe._line
    writes = 0
    write = line.writer.write

    def counted(data: bytes) -> None:
        nonlocal writes
        writes += 1
        write(data)

    line.writer.write = counted

    async def one(i: int) -> object:
        if i % 50 == 7:
            with pytest.raises(ResponseError):
                await pipe.execute_command("GET", f"k{i}", "extra")
            return "error"
        return await pipe.get(f"k{i}")

    replies = await asyncio.gather(*(one(i) for i in range(300)))
    expected = ["error" if i % 50 == 7 else f"v{i}".encode() for i in range(300)]
    assert replies == expected
    assert 1 <= writes <= 10


async def test_a_caller_that_stops_waiting_shifts_no_reply(redis: aioredis.Redis) -> None:
    pipe = PipelinedRedis(redis.connection_pool)
    await redis.mset({"a": "1", "b": "2", "c": "3"})
    await pipe.get("a")
    first, second, third = [pipe.get(key) for key in ("a", "b", "c")]
    second.cancel()  # its caller went away (a cancelled hop)
    assert (await first, await third) == (b"1", b"3")
    never_read = pipe.get("b")  # asked, never awaited
    assert await pipe.get("c") == b"3"
    assert never_read.result() == b"2"


async def test_connections_the_server_closed_are_opened_again(redis: aioredis.Redis) -> None:
    store = SessionStore(redis, ttl_s={"ussd": 180}, ref_key=REF_KEY)
    await store.save("ussd", "s1", Session(state="menu"), user_ref=USER)
    loads = await asyncio.gather(*(store.load("ussd", "s1", USER) for _ in range(4)))
    assert all(loads)
    assert await _kill_others(redis) >= 1

    async def seen_closed() -> bool:  # the server's close has reached the pipeline's socket
        line = store._hot._line
        return line is not None and not line.usable()

    await eventually(seen_closed, what="the killed connection seen closed")
    for _ in range(6):  # the closed connection is seen before sending, not by a failed hop
        loaded = await store.load("ussd", "s1", USER)
        assert loaded is not None and loaded.state == "menu"
    assert await store.save("ussd", "s1", Session(state="end", version=1), user_ref=USER)


async def test_a_connection_lost_under_commands_fails_them_and_the_next_gets_a_new_one(
    redis: aioredis.Redis,
) -> None:
    pipe = PipelinedRedis(redis.connection_pool)
    await redis.set("a", "1")
    blocked = pipe.execute_command("BLPOP", "nothing-comes", "5")  # in flight when the line drops
    behind = pipe.get("a")

    async def blocked_in_blpop() -> bool:  # the server has read it: the line drops under it
        return any(c["cmd"] == "blpop" for c in await redis.client_list())

    await eventually(blocked_in_blpop, what="the pipeline's BLPOP blocking at the server")
    assert await _kill_others(redis) >= 1
    for reply in (blocked, behind):
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(reply, 3)
    assert await pipe.get("a") == b"1"
    in_use: Any = redis.connection_pool._in_use_connections
    assert len(in_use) == 1  # the failed connection went back to the pool; only the new one out


async def test_the_redis_py_parts_it_leans_on_are_there(redis: aioredis.Redis) -> None:
    """A redis-py upgrade that renames or drops any of these fails here, not on a hop: a pool
    hands out a connection without a command, whose streams are asyncio's own."""
    pool = redis.connection_pool
    conn = pool.get_available_connection()  # type: ignore[no-untyped-call]
    try:
        await conn.connect()
        assert isinstance(conn._writer, asyncio.StreamWriter)
        assert isinstance(conn._reader, asyncio.StreamReader)
        assert conn.is_connected
        conn._writer.write(b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n")
        assert await conn.read_response() == b"hi"
        conn._writer.write(b"*1\r\n$13\r\nNOT-A-COMMAND\r\n")
        with pytest.raises(ResponseError):
            await conn.read_response()
        assert (conn.encoder.encoding, conn.encoder.encoding_errors) == ("utf-8", "strict")
    finally:
        await conn.disconnect()
        await pool.release(conn)


async def test_commands_given_while_a_connection_opens_keep_their_order(
    redis: aioredis.Redis,
) -> None:
    """The first commands of a client (no connection yet) are sent once it is open, in the order
    given, each with its own reply; nothing is sent twice."""
    pipe = PipelinedRedis(redis.connection_pool)
    replies = [pipe.execute_command("INCR", "n") for _ in range(5)]
    assert [await reply for reply in replies] == [1, 2, 3, 4, 5]
    assert await redis.get("n") == b"5"


async def test_a_connection_that_cannot_open_fails_the_commands_waiting_for_it(
    redis_url: str,
) -> None:
    pool = aioredis.ConnectionPool.from_url("redis://127.0.0.1:1/0")  # nothing listens there
    pipe = PipelinedRedis(pool)
    try:
        replies = [pipe.get("a"), pipe.get("b")]
        for reply in replies:
            with pytest.raises(RedisConnectionError):
                await reply
    finally:
        await pool.disconnect()


@pytest.mark.parametrize("pipelined", [False, True])
async def test_a_lua_script_is_loaded_again_after_the_server_forgot_it(
    redis: aioredis.Redis, pipelined: bool
) -> None:
    """The same :class:`Lua` on redis-py's client and on the pipelined one: EVALSHA, and after a
    SCRIPT FLUSH (a restarted server) loaded again, once, and run."""
    script = Lua("return {KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1}")
    client: Any = PipelinedRedis(redis.connection_pool) if pipelined else redis
    assert await script(client, ["k"], [b"v", 41]) == [b"k", b"v", 42]
    await redis.script_flush()
    assert await redis.script_exists(script.sha) == [False]
    assert await script(client, ["k"], ["w", 1]) == [b"k", b"w", 2]
    assert await redis.script_exists(script.sha) == [True]
