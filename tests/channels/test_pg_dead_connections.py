"""Every connection PostgreSQL dropped (a restart, a failover, an idle-timeout in a proxy) is
noticed before it is used: the next hop and the next top-up succeed on each path that holds
connections (SQLAlchemy's pool, core.db.Lookups' own, the ledger's fast path on the pool's)."""

from __future__ import annotations

import asyncio

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import select

from core.context import Core
from core.models import Topup
from tests.channels.conftest import AtPhone

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


async def drop_every_connection(core: Core) -> int:
    """``pg_terminate_backend`` for every backend on the test's database but the caller's own:
    the app's pool and lookups, and the test's core. How many were dropped."""
    url = core.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    others = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    admin = await asyncpg.connect(url)
    try:
        dropped: int = await admin.fetchval(f"SELECT count(pg_terminate_backend(pid)) {others}")
        # pg_terminate_backend only signals: the backends close their sockets as they exit.
        for _ in range(200):
            if not await admin.fetchval(f"SELECT count(*) {others}"):
                return dropped
            await asyncio.sleep(0.01)
        raise AssertionError("the terminated backends did not exit within 2 s")
    finally:
        await admin.close()


async def test_the_next_hop_after_the_server_dropped_every_connection(
    phone: AtPhone, core: Core
) -> None:
    """The hops before each drop leave idle connections in the app's pool and lookups; each one
    after it is served on new ones, and the confirmed top-up is accepted."""
    assert (await phone.dial()).startswith("CON AirGate")
    assert await drop_every_connection(core) >= 2  # at least the app's lookup and pool ones
    for text in ("1", "0788123456", "500"):
        assert (await phone.send(text)).startswith("CON "), text
        await drop_every_connection(core)  # none, if the hop needed no database
    done = await phone.send("1234")
    assert done.startswith("END Top-up of KES 500 to 0788123456 accepted."), done
    await drop_every_connection(core)
    assert (await phone.redial().dial()).startswith("CON AirGate")  # who is calling, again
    async with core.sessions() as session:
        assert (await session.execute(select(Topup))).scalar_one().amount_minor == 50_000
