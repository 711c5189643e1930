"""docs/OPERATIONS.md, "Back up and restore", as written: a database with money in it dumped with
``pg_dump -Fc``, restored with ``pg_restore`` into a fresh database, and ``airgate ledger verify``
passes there with the same balances; a restore missing a table is caught by the verification."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import asyncpg
import pytest

from tests.conftest import PG_ADMIN_URL, PG_SKIP_REASON, PG_UP, pg_url
from tests.e2e.conftest import CliRunner

pytestmark = [
    pytest.mark.slow,  # real processes and a whole database dumped or migrated: a minute or two
    pytest.mark.skipif(not PG_UP, reason=PG_SKIP_REASON),
    pytest.mark.skipif(shutil.which("pg_dump") is None, reason="pg_dump is not installed"),
]
RETAILER = "+254700000001"


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def databases() -> Iterator[tuple[str, str]]:
    """Two empty databases of this test's own: the live one and the restore's target."""
    names = [f"airgate_backup_{os.getpid()}", f"airgate_restored_{os.getpid()}"]
    for name in names:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield pg_url(names[0]), pg_url(names[1])
    finally:
        for name in names:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _libpq(url: str) -> list[str]:
    """pg_dump's and pg_restore's connection options for ``url`` (no password: trust)."""
    parts = urlparse(url)
    return [
        "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432),
        "-U", parts.username or "postgres", "-d", parts.path.lstrip("/"),
    ]  # fmt: skip


def _balance(airgate: CliRunner, url: str) -> object:
    return json.loads(airgate("balance", RETAILER, "--json", AIRGATE_DATABASE_URL=url).stdout)


def test_a_dump_restored_into_a_fresh_database_verifies(
    airgate: CliRunner, databases: tuple[str, str], tmp_path: Path
) -> None:
    live, restored = databases
    airgate("seed", "--demo", "--retailers", "2", AIRGATE_DATABASE_URL=live)
    airgate("ledger", "verify", AIRGATE_DATABASE_URL=live)
    dump = tmp_path / "airgate.dump"
    subprocess.run(
        ["pg_dump", "-Fc", "--no-owner", "-f", str(dump), *_libpq(live)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    subprocess.run(
        ["pg_restore", "--no-owner", "--exit-on-error", *_libpq(restored), str(dump)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    airgate("ledger", "verify", AIRGATE_DATABASE_URL=restored)  # exit 0: every invariant holds
    assert _balance(airgate, restored) == _balance(airgate, live)
    # The restored database is migrated as it was: `db upgrade` has nothing to do.
    airgate("db", "upgrade", AIRGATE_DATABASE_URL=restored)


def test_a_restore_missing_the_transfers_fails_verification(
    airgate: CliRunner, databases: tuple[str, str], tmp_path: Path
) -> None:
    """The check can fail: balances restored without the transfers behind them do not add up."""
    live, restored = databases
    airgate("seed", "--demo", "--retailers", "2", AIRGATE_DATABASE_URL=live)
    dump = tmp_path / "airgate.dump"
    subprocess.run(
        ["pg_dump", "-Fc", "--no-owner", "-f", str(dump), *_libpq(live)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    subprocess.run(
        ["pg_restore", "--no-owner", *_libpq(restored), str(dump)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip

    async def lose_transfers() -> None:
        conn = await asyncpg.connect(restored)
        try:
            await conn.execute("ALTER TABLE transfer DISABLE TRIGGER ALL")
            await conn.execute("DELETE FROM transfer")
        finally:
            await conn.close()

    asyncio.run(lose_transfers())
    result = airgate("ledger", "verify", ok=False, AIRGATE_DATABASE_URL=restored)
    assert result.returncode != 0
