"""A database or Redis that is not there reaches services and channels as AirGate's own
StoreUnavailable (core/stores.py), never as a driver's exception; other database errors pass."""

from __future__ import annotations

import asyncio

import asyncpg  # type: ignore[import-untyped]
import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from core.context import Core, open_core
from core.conversation.sessions import Resume, Session, SessionStore
from core.errors import StoreUnavailable
from core.models import Reservation
from core.providers.sms import AfricasTalkingSms
from core.services import callers
from core.services.broadcast import Sender
from core.settings import Settings
from tests.e2e.conftest import free_port
from tests.helpers import SAFARICOM, assert_ledger_ok, chain, give_retailer_stock

NUMBER = "+254712345678"


async def test_a_refused_database_connection_is_store_unavailable(settings: Settings) -> None:
    down = settings.model_copy(
        update={"database_url": f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none"}
    )
    async with open_core(down) as core:
        with pytest.raises(StoreUnavailable) as caught:
            async with core.transaction() as session:
                await session.execute(text("SELECT :n"), {"n": NUMBER})
    assert caught.value.store == "database"
    assert NUMBER not in str(caught.value) and NUMBER not in repr(caught.value)


async def terminate(core: Core, pid: int) -> None:
    url = core.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(url)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        for _ in range(200):  # it only signals: the backend closes its socket as it exits
            if not await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid
            ):
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the terminated backend did not exit within 2 s")
    finally:
        await admin.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # a server drops it
async def test_a_connection_dropped_in_a_transaction_is_store_unavailable(core: Core) -> None:
    with pytest.raises(StoreUnavailable) as caught:
        async with core.transaction() as session:
            pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            await terminate(core, pid)
            await session.execute(text("SELECT :n"), {"n": NUMBER})
    assert caught.value.store == "database" and NUMBER not in repr(caught.value)
    async with core.transaction() as session:  # the pool recovers: the next one works
        assert (await session.execute(text("SELECT 1"))).scalar_one() == 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # a server drops it
async def test_an_idle_connection_the_server_dropped_is_replaced(core: Core) -> None:
    """The pool pings a connection as it hands it out (core/db.py): the next unit of work runs."""
    async with core.transaction() as session:
        pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    await terminate(core, pid)
    async with core.transaction() as session:
        assert (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one() != pid


async def test_other_database_errors_pass_unchanged(core: Core) -> None:
    with pytest.raises(IntegrityError):
        async with core.transaction() as session:
            await session.execute(text("INSERT INTO party (id) VALUES (NULL)"))


async def test_the_broadcast_senders_lease_on_a_redis_that_is_down(
    core: Core, settings: Settings
) -> None:
    redis = aioredis.Redis(host="127.0.0.1", port=free_port())
    sms = AfricasTalkingSms.from_settings(settings)
    try:
        sender = Sender(core=core, redis=redis, sms=sms, telegram=None)
        with pytest.raises(StoreUnavailable) as caught:
            await sender.run(1, budget_s=1)
    finally:
        await sms.close()
        await redis.aclose()
    assert caught.value.store == "redis"


async def test_who_is_calling_on_a_refused_database(settings: Settings) -> None:
    down = settings.model_copy(
        update={"database_url": f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none"}
    )
    async with open_core(down) as core:
        for ask in (callers.who, callers.identify):
            with pytest.raises(StoreUnavailable) as caught:
                await ask(core, user_ref=NUMBER)
            assert caught.value.store == "database" and NUMBER not in repr(caught.value)
        with pytest.raises(StoreUnavailable):
            await callers.who(core, user_ref="4242", channel="telegram")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # a server drops it
async def test_who_is_calling_over_a_connection_the_server_dropped(settings: Settings) -> None:
    """Through SQLAlchemy's pool (no connections of the lookups' own): the path every read takes
    when those are busy or failed."""
    async with open_core(settings.model_copy(update={"db_lookup_connections": 0})) as core:
        assert await callers.who(core, user_ref=NUMBER) is None  # a pooled connection, kept
        async with core.engine.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        await terminate(core, pid)
        assert await callers.who(core, user_ref=NUMBER) is None  # on a new connection


async def test_the_session_store_on_a_redis_that_is_down() -> None:
    redis = aioredis.Redis(host="127.0.0.1", port=free_port())
    store = SessionStore(redis, ttl_s={"ussd": 60}, ref_key=b"k" * 32)
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await store.load("ussd", "s1", NUMBER)
        assert caught.value.store == "redis"
        with pytest.raises(StoreUnavailable):
            await store.save(
                "ussd", "s1", Session(state="menu"), user_ref=NUMBER, resume=Resume(None)
            )
        with pytest.raises(StoreUnavailable) as caught:
            await store.resume_point("ussd", NUMBER)
        assert NUMBER not in str(caught.value) and NUMBER not in repr(caught.value)
    finally:
        await redis.aclose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # a server drops it
async def test_a_connection_dropped_mid_reservation_is_store_unavailable(core: Core) -> None:
    """The ledger's one statement runs on the asyncpg connection itself (core/ledger/pg_fast.py):
    a server that ends the connection while the statement runs (a restart: "terminating
    connection due to administrator command") is "not there, try again", as anywhere else, not an
    unexpected error; nothing was written, the statement's values are not in the error, and the
    pool hands out a working connection next. (Seen in the chaos run, tests/scale/.)"""
    distributor, [shop] = await chain(core)
    await give_retailer_stock(core, distributor, shop, 10_000, "r1")
    url = core.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    locker = await asyncpg.connect(url)  # holds the shop's accounts: the reservation waits
    try:
        async with locker.transaction():
            await locker.execute("SELECT 1 FROM account WHERE party_id = $1 FOR UPDATE", shop.id)
            with pytest.raises(StoreUnavailable) as caught:
                async with core.transaction() as session:
                    pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                    waiting = asyncio.create_task(_terminate_once_waiting(locker, pid))
                    try:
                        await core.ledger.reserve(
                            session, reservation_id="T-DROPPED", party_id=shop.id or 0,
                            asset=f"AIRTIME:{SAFARICOM}", amount_minor=5_000,
                        )  # fmt: skip
                    finally:
                        await waiting
    finally:
        await locker.close()
    assert caught.value.store == "database"
    cause = caught.value.__cause__
    assert "T-DROPPED" not in f"{caught.value!r} {cause}", cause
    async with core.transaction() as session:
        assert await session.get(Reservation, "T-DROPPED") is None
    await assert_ledger_ok(core)


async def _terminate_once_waiting(admin: asyncpg.Connection, pid: int) -> None:
    for _ in range(500):
        if await admin.fetchval(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
        ):
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the reservation never waited for the lock")
