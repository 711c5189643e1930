"""Every PostgreSQL call is bounded (AIRGATE_DB_TIMEOUT_S, _CONNECT_TIMEOUT_S, _POOL_TIMEOUT_S):
a slow statement, a row lock held elsewhere, a server that accepts and never answers, a pool with
nothing to give: each ends as StoreUnavailable ("try again") within its limit, never a hang."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import text

from core.context import Core, open_core
from core.errors import StoreUnavailable
from core.services import callers
from core.settings import Settings

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
NUMBER = "+254712345678"
LIMIT_S = 0.5


@pytest.fixture
async def quick(settings: Settings) -> AsyncIterator[Core]:
    """A core whose statements, logins and pool waits are each allowed LIMIT_S."""
    limits = {"db_timeout_s": LIMIT_S, "db_connect_timeout_s": LIMIT_S}
    limits |= {"db_pool_timeout_s": LIMIT_S, "db_pool_size": 1, "db_max_overflow": 0}
    async with open_core(settings.model_copy(update=limits)) as core:
        yield core


async def test_a_slow_statement_is_cancelled_and_the_connection_kept(quick: Core) -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        async with quick.transaction() as session:
            await session.execute(text("SELECT pg_sleep(5), :n"), {"n": NUMBER})
    assert time.monotonic() - started < LIMIT_S + 1.5
    assert caught.value.store == "database" and NUMBER not in repr(caught.value)
    async with quick.transaction() as session:  # the one pooled connection still serves
        assert (await session.execute(text("SELECT 1"))).scalar_one() == 1


async def test_a_row_lock_held_elsewhere_is_waited_on_for_the_limit_only(
    quick: Core, core: Core
) -> None:
    async with core.transaction() as session:
        await session.execute(text("CREATE TABLE IF NOT EXISTS hot (id int PRIMARY KEY)"))
        await session.execute(text("INSERT INTO hot VALUES (1) ON CONFLICT DO NOTHING"))
    url = core.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    holder = await asyncpg.connect(url)
    try:
        async with holder.transaction():
            await holder.execute("SELECT * FROM hot WHERE id = 1 FOR UPDATE")
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                async with quick.transaction() as session:
                    await session.execute(text("UPDATE hot SET id = 1 WHERE id = 1"))
            assert time.monotonic() - started < LIMIT_S + 1.5
    finally:
        await holder.close()
        async with core.transaction() as session:
            await session.execute(text("DROP TABLE hot"))


async def test_a_pool_with_nothing_to_give_is_store_unavailable(quick: Core) -> None:
    async with quick.transaction() as session:
        await session.execute(text("SELECT 1"))  # holds the pool's one connection
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as caught:
            async with quick.transaction() as other:
                await other.execute(text("SELECT 1"))
        assert time.monotonic() - started < LIMIT_S + 1.5
    assert caught.value.detail == "pool timeout"


async def test_a_server_that_never_answers_the_login(
    settings: Settings, silent_server: int
) -> None:
    """Both paths that connect (SQLAlchemy's pool, the lookups' own) give up after the limit."""
    hung = settings.model_copy(
        update={
            "database_url": f"postgresql+asyncpg://postgres@127.0.0.1:{silent_server}/x",
            "db_connect_timeout_s": LIMIT_S,
        }
    )
    async with open_core(hung) as core:

        async def unit_of_work() -> None:
            async with core.transaction() as session:
                await session.execute(text("SELECT 1"))

        for attempt in (lambda: callers.who(core, user_ref=NUMBER), unit_of_work):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as caught:
                await asyncio.wait_for(attempt(), timeout=10)
            assert time.monotonic() - started < LIMIT_S + 1.5
            assert caught.value.store == "database" and NUMBER not in repr(caught.value)
