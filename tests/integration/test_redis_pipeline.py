"""``core.redis.command`` (the session store's GET and EVALSHA) against redis-py's own commands,
in real Redis: the same replies and errors, and connections the server closed are replaced; and
``core.redis.sent``, a command whose reply is read later, never leaving a reply behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, ResponseError

from core.conversation.sessions import Session, SessionStore
from core.redis import _pack, command, sent


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_replies_and_errors_are_redis_pys(redis: aioredis.Redis) -> None:
    pool = redis.connection_pool
    value = "é" * 10 + '{"v":1}' + "x" * 7000  # past redis-py's 6 KB buffer cutoff
    await redis.set("k", value)
    assert await command(pool, "GET", "k") == await redis.get("k") == value.encode()
    assert await command(pool, "GET", "absent") is None
    script = "return {KEYS[1], ARGV[1], 7}"
    sha = await redis.script_load(script)
    assert await command(pool, "EVALSHA", sha, "1", "a", "b") == [b"a", b"b", 7]
    with pytest.raises(NoScriptError):
        await command(pool, "EVALSHA", "0" * 40, "0")
    with pytest.raises(ResponseError):
        await command(pool, "GET", "k", "extra")  # wrong number of arguments
    assert await command(pool, "GET", "k") == value.encode()  # the connection is still good
    for args in [("GET", "k"), ("EVALSHA", sha, "1", "é" * 3, value), ("SET", "k", b"\xc3\xa9")]:
        conn = pool.make_connection()  # type: ignore[no-untyped-call]
        assert _pack(conn, args) == [b"".join(conn.pack_command(*args))]


async def test_connections_the_server_closed_are_opened_again(redis: aioredis.Redis) -> None:
    pool = redis.connection_pool
    store = SessionStore(redis, ttl_s={"ussd": 180})
    await store.save("ussd", "s1", Session(state="menu"))
    loads = await asyncio.gather(*(store.load("ussd", "s1") for _ in range(4)))
    assert all(loads)  # several connections in the pool
    admin_pool = aioredis.ConnectionPool(
        connection_class=pool.connection_class, **pool.connection_kwargs
    )
    admin = aioredis.Redis(connection_pool=admin_pool)
    try:
        own, db = await admin.client_id(), str(pool.connection_kwargs.get("db", 0))
        for client in await admin.client_list():
            if int(client["id"]) != own and client["db"] == db:
                await admin.client_kill_filter(_id=str(client["id"]))
    finally:
        await admin.aclose()
        await admin_pool.disconnect()
    await asyncio.sleep(0.2)  # the closes reach the connections
    for _ in range(6):
        loaded = await store.load("ussd", "s1")
        assert loaded is not None and loaded.state == "menu"
    assert await store.save("ussd", "s1", Session(state="end", version=1))


async def test_a_reply_read_later_or_not_at_all_is_never_left_behind(
    redis: aioredis.Redis,
) -> None:
    """The pool hands out the connection returned last: a reply left unread on it would be the
    next command's answer. Read in the body, read on the way out, or the connection closed."""
    pool = redis.connection_pool
    await redis.mset({"a": "1", "b": "2"})
    async with sent(pool, "GET", "a") as reply:
        assert await command(pool, "GET", "b") == b"2"  # meanwhile, on another connection
        assert await reply() == b"1"
        assert await reply() == b"1"  # read once, remembered
    assert await command(pool, "GET", "b") == b"2"
    async with sent(pool, "GET", "a"):
        pass  # never asked: read on the way out
    assert await command(pool, "GET", "b") == b"2"
    with pytest.raises(LookupError):
        async with sent(pool, "GET", "a"):
            raise LookupError  # the body failed: the connection is closed instead
    assert await command(pool, "GET", "b") == b"2"
    with pytest.raises(ResponseError):
        async with sent(pool, "GET", "a", "extra") as reply:
            await reply()  # Redis's error reply is raised where it is read
    assert await command(pool, "GET", "b") == b"2"
