"""AirGate through PgBouncer in transaction pooling mode (Debian's 1.18: no prepared statements of
its own), as docker-compose.yml runs it: concurrent USSD top-up journeys, each hop's who is
calling (core.db.Lookups' own connections), the confirm's reservation (the ledger's fast path)
and the pool's statements, over few server connections that every client shares.

Also the suite's PostgreSQL tests through it (slow): tests/conftest.py's
AIRGATE_TEST_PGBOUNCER_URL points their engines at a PgBouncer of the test's own."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from sqlalchemy import select, text

from core.context import Core
from core.models import Topup
from core.services import callers
from core.services.seed import retailer_msisdn, seed_demo
from core.settings import Settings
from tests.channels.conftest import AtPhone
from tests.conftest import PG_ADMIN_URL
from tests.private_postgres import pgbouncer_available, private_pgbouncer, require

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pgbouncer() -> Iterator[str]:
    """Two server connections for everything: statements of different clients interleave on
    them, and a client's next transaction rarely finds the server connection of its last."""
    require("/usr/sbin/pgbouncer (apt-get install pgbouncer)", present=pgbouncer_available())
    with private_pgbouncer(PG_ADMIN_URL, server_pool=2) as url:
        yield url


@pytest.fixture
def settings(settings: Settings, pgbouncer: str) -> Settings:
    """The test's database through the PgBouncer, as AIRGATE_DB_PGBOUNCER says it is."""
    database = urlparse(settings.database_url).path
    update = {
        "database_url": urlparse(pgbouncer)
        ._replace(scheme="postgresql+asyncpg", path=database)
        .geturl(),
        "db_pgbouncer": True,
        "db_lookup_connections": 2,
    }
    return settings.model_copy(update=update)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_concurrent_top_up_journeys(client: object, core: Core) -> None:
    phones = [AtPhone(client, retailer_msisdn(i)) for i in (1, 2, 3)]  # type: ignore[arg-type]

    async def journey(phone: AtPhone, amount: str) -> str:
        for _ in range(3):  # each dial a who-is-calling on the lookups' connections
            assert (await phone.dial()).startswith("CON AirGate")
        for typed in ("1", "0788123456", amount):
            assert (await phone.send(typed)).startswith("CON "), typed
        return await phone.send("1234")

    done = await asyncio.gather(*(journey(p, str(100 * n)) for n, p in enumerate(phones, 1)))
    for answer in done:
        assert answer.startswith("END Top-up of KES"), answer
        assert "accepted" in answer
    async with core.sessions() as session:
        made = sorted(t.amount_minor for t in (await session.execute(select(Topup))).scalars())
    assert made == [10_000, 20_000, 30_000]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_many_units_of_work_on_two_server_connections(core: Core) -> None:
    """Ten clients' transactions and lookups interleaved on PgBouncer's two server connections:
    without AIRGATE_DB_PGBOUNCER about half fail ("prepared statement … does not exist")."""
    await seed_demo(core, retailers=1)
    shop = retailer_msisdn(1)

    async def client(n: int) -> None:
        for i in range(10):
            async with core.transaction() as session:
                one = text("SELECT CAST(:a AS int) + CAST(:b AS int)")
                assert (await session.execute(one, {"a": n, "b": i})).scalar_one() == n + i
                two = text(f"SELECT {n % 3} + CAST(:x AS int)")
                assert (await session.execute(two, {"x": i})).scalar_one() == n % 3 + i
            found = await callers.who(core, user_ref=shop)
            assert found is not None

    await asyncio.gather(*(client(n) for n in range(10)))


# The suite's files whose PostgreSQL halves run through PgBouncer (about 2-4 min on a loaded
# 2-core machine; the whole tests/integration takes over 10): the ledger and its fast path,
# identities, top-up requests and their money, stock, distributor requests, settlement, sessions.
THROUGH = [
    "tests/integration/test_ledger.py",
    "tests/integration/test_ledger_fastpath.py",
    "tests/integration/test_identities.py",
    "tests/integration/test_topup_request.py",
    "tests/integration/test_stock.py",
    "tests/integration/test_requests.py",
    "tests/integration/test_settlement.py",
    "tests/integration/test_sessions.py",
]


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_the_suites_database_tests_through_pgbouncer(pgbouncer: str) -> None:
    env = {**os.environ, "AIRGATE_TEST_PGBOUNCER_URL": pgbouncer}
    env["AIRGATE_TEST_REQUIRE_POSTGRES"] = "1"  # a PostgreSQL half skipped fails the run
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "0", "-q", "-p", "no:cacheprovider"]
        + [*THROUGH, "-k", "postgresql"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and " skipped" not in run.stdout, run.stdout[-600:]
