"""``core.redis.Pipeline`` (the session store's GET and EVALSHA) against redis-py's own commands,
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
from core.redis import Pipeline, _pack
from tests.helpers import eventually

REF_KEY = b"test-ref-key-0123456789abcdef0123"


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
    pipe = Pipeline(redis.connection_pool)
    value = "é" * 10 + '{"v":1}' + "x" * 7000  # past redis-py's 6 KB buffer cutoff
    await redis.set("k", value)
    assert await pipe.execute("GET", "k") == await redis.get("k") == value.encode()
    assert await pipe.execute("GET", "absent") is None
    script = "return {KEYS[1], ARGV[1], 7}"
    sha = await redis.script_load(script)
    assert await pipe.execute("EVALSHA", sha, "1", "a", b"b") == [b"a", b"b", 7]
    with pytest.raises(NoScriptError):
        await pipe.execute("EVALSHA", "0" * 40, "0")
    with pytest.raises(ResponseError):
        await pipe.execute("GET", "k", "extra")  # wrong number of arguments
    assert await pipe.execute("GET", "k") == value.encode()  # the connection is still good
    for args in [("GET", "k"), ("EVALSHA", sha, "1", "é" * 3, value), ("SET", "k", b"\xc3\xa9")]:
        conn = redis.connection_pool.make_connection()  # type: ignore[no-untyped-call]
        assert _pack(conn, args) == [b"".join(conn.pack_command(*args))]


async def test_commands_given_together_share_writes_and_keep_their_replies(
    redis: aioredis.Redis,
) -> None:
    """300 commands from 300 tasks at once, errors among them: each gets its own reply, in far
    fewer socket writes than commands."""
    pipe = Pipeline(redis.connection_pool)
    await redis.mset({f"k{i}": f"v{i}" for i in range(300)})
    await pipe.execute("GET", "k0")  # the connection is open
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
                await pipe.execute("GET", f"k{i}", "extra")
            return "error"
        return await pipe.execute("GET", f"k{i}")

    replies = await asyncio.gather(*(one(i) for i in range(300)))
    expected = ["error" if i % 50 == 7 else f"v{i}".encode() for i in range(300)]
    assert replies == expected
    assert 1 <= writes <= 10


async def test_a_caller_that_stops_waiting_shifts_no_reply(redis: aioredis.Redis) -> None:
    pipe = Pipeline(redis.connection_pool)
    await redis.mset({"a": "1", "b": "2", "c": "3"})
    await pipe.execute("GET", "a")
    first, second, third = [await pipe.ask("GET", key) for key in ("a", "b", "c")]
    second.cancel()  # its caller went away (a cancelled hop)
    assert (await first, await third) == (b"1", b"3")
    never_read = await pipe.ask("GET", "b")  # asked, never awaited
    assert await pipe.execute("GET", "c") == b"3"
    assert never_read.result() == b"2"


async def test_connections_the_server_closed_are_opened_again(redis: aioredis.Redis) -> None:
    store = SessionStore(redis, ttl_s={"ussd": 180}, ref_key=REF_KEY)
    await store.save("ussd", "s1", Session(state="menu"))
    loads = await asyncio.gather(*(store.load("ussd", "s1") for _ in range(4)))
    assert all(loads)
    assert await _kill_others(redis) >= 1

    async def seen_closed() -> bool:  # the server's close has reached the pipeline's socket
        line = store._hot._line
        return line is not None and not line.usable()

    await eventually(seen_closed, what="the killed connection seen closed")
    for _ in range(6):  # the closed connection is seen before sending, not by a failed hop
        loaded = await store.load("ussd", "s1")
        assert loaded is not None and loaded.state == "menu"
    assert await store.save("ussd", "s1", Session(state="end", version=1))


async def test_a_connection_lost_under_commands_fails_them_and_the_next_gets_a_new_one(
    redis: aioredis.Redis,
) -> None:
    pipe = Pipeline(redis.connection_pool)
    await redis.set("a", "1")
    blocked = await pipe.ask("BLPOP", "nothing-comes", "5")  # in flight when the line drops
    behind = await pipe.ask("GET", "a")

    async def blocked_in_blpop() -> bool:  # the server has read it: the line drops under it
        return any(c["cmd"] == "blpop" for c in await redis.client_list())

    await eventually(blocked_in_blpop, what="the pipeline's BLPOP blocking at the server")
    assert await _kill_others(redis) >= 1
    for reply in (blocked, behind):
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(reply, 3)
    assert await pipe.execute("GET", "a") == b"1"
    in_use: Any = redis.connection_pool._in_use_connections
    assert len(in_use) == 1  # the failed connection went back to the pool; only the new one out
