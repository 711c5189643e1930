"""A hop that moved money says so, whatever happens to Redis after: the confirmation's receipt
("accepted. Ref …") is the answer even when the session's last write cannot reach Redis. Telling
that user "try again" would make them pay twice (found by the chaos run, tests/scale/: Redis paused
between a top-up's commit and its session's save; the top-up was delivered, the user had been told
"not available for a moment").

The real app over HTTP on PostgreSQL and a private ``redis-server``: the reservation is held on a
row lock of the test's own while Redis is paused, then let through."""

from __future__ import annotations

import asyncio

import asyncpg  # type: ignore[import-untyped]
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from core.context import Core
from core.models import Party, Topup
from tests.channels.conftest import AtPhone
from tests.redis_servers import RedisServer

SHOP = "+254700000001"  # a demo retailer, PIN 1234


@pytest.fixture
def client(private_client: TestClient) -> TestClient:
    return private_client


async def _wait_for_a_lock_waiter(admin: asyncpg.Connection) -> None:
    for _ in range(1_000):
        if await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database()"
        ):
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the reservation never waited for the shop's row lock")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # a row lock to hold
async def test_a_topup_made_before_redis_pauses_is_answered_accepted(
    client: TestClient, core: Core, redis_server: RedisServer
) -> None:
    phone = AtPhone(client, SHOP)
    await phone.dial()
    for typed in ("1", "0712345670", "50"):
        assert (await phone.send(typed)).startswith("CON"), typed
    async with core.sessions() as session:
        shop_id = (await session.execute(select(Party.id).where(Party.msisdn == SHOP))).scalar()
    url = core.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    locker = await asyncpg.connect(url)
    try:
        async with locker.transaction():
            await locker.execute("SELECT 1 FROM account WHERE party_id = $1 FOR UPDATE", shop_id)
            confirming = asyncio.create_task(phone.send("1234"))
            await _wait_for_a_lock_waiter(locker)
            redis_server.pause()  # the reservation is past Redis; its commit and answer are not
        answer = await confirming  # the lock is let go: it commits, then Redis does not answer
    finally:
        redis_server.resume()
        await locker.close()
    async with core.sessions() as session:
        made = list((await session.execute(select(Topup))).scalars())
    assert len(made) == 1, made
    assert answer.startswith(f"END Top-up of KES 50 to 0712345670 accepted. Ref {made[0].id}."), (
        answer
    )
