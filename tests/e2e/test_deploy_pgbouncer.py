"""deploy/pgbouncer.ini as shipped, run by Debian's real PgBouncer (only its addresses changed
to this machine's): AirGate migrates straight to PostgreSQL as the compose file's `migrate` does,
then seeds, verifies the ledger and reads balances through PgBouncer in transaction pooling mode
with AIRGATE_DB_PGBOUNCER=true, as `serve` and `worker` do there."""

from __future__ import annotations

import asyncio
import configparser
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import PG_ADMIN_URL, PG_SKIP_REASON, PG_UP, pg_url
from tests.e2e.conftest import CliRunner, free_port
from tests.helpers import killed_at_exit

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
pytestmark = [
    pytest.mark.slow,  # real processes and a whole database dumped or migrated: a minute or two
    pytest.mark.skipif(not PG_UP, reason=PG_SKIP_REASON),
    pytest.mark.skipif(not Path(PGBOUNCER).exists(), reason="pgbouncer is not installed"),
]
ROOT = Path(__file__).resolve().parents[2]


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _config_here(tmp_path: Path, *, database: str, port: int) -> Path:
    """The shipped config with this machine's addresses: PostgreSQL at 127.0.0.1:5432 as the
    suite's user, PgBouncer on ``port``; every pooling setting as shipped."""
    ini = configparser.ConfigParser()
    ini.read(ROOT / "deploy" / "pgbouncer.ini")
    assert ini["pgbouncer"]["pool_mode"] == "transaction"
    ini["databases"]["airgate"] = f"host=127.0.0.1 port=5432 dbname={database} user=postgres"
    userlist = tmp_path / "userlist.txt"
    userlist.write_text('"postgres" ""\n')
    ini["pgbouncer"].update(
        listen_addr="127.0.0.1",
        listen_port=str(port),
        auth_file=str(userlist),
        admin_users="postgres",
        unix_socket_dir="",  # no socket beside the shared server's
        logfile=str(tmp_path / "pgbouncer.log"),
    )
    path = tmp_path / "pgbouncer.ini"
    with path.open("w") as f:
        ini.write(f)
    return path


@pytest.fixture
def bouncer() -> Iterator[tuple[str, str]]:
    """(direct URL, URL through PgBouncer) of a fresh database of this test's own."""
    # Not pytest's tmp_path: its parents are root's alone, and PgBouncer drops root for postgres.
    tmp_path = Path(tempfile.mkdtemp(prefix="ag-bouncer-"))
    tmp_path.chmod(0o777)
    database = f"airgate_bouncer_{os.getpid()}"
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    asyncio.run(_admin(f'CREATE DATABASE "{database}"'))
    port = free_port()
    config = _config_here(tmp_path, database=database, port=port)
    user = ["-u", "postgres"] if os.geteuid() == 0 else []  # it refuses to run as root
    process = subprocess.Popen([PGBOUNCER, *user, str(config)], stderr=subprocess.PIPE, text=True)
    try:
        with killed_at_exit(process):
            deadline = time.monotonic() + 20
            while subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", str(port)],
                                 capture_output=True).returncode != 0:  # fmt: skip
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "PgBouncer did not start"
                time.sleep(0.2)
            yield pg_url(database), f"postgresql://postgres@127.0.0.1:{port}/airgate"
            process.terminate()
    finally:
        if process.stderr is not None:
            process.stderr.close()
        shutil.rmtree(tmp_path, ignore_errors=True)
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


def test_airgate_runs_through_the_shipped_pgbouncer(
    airgate: CliRunner, bouncer: tuple[str, str]
) -> None:
    direct, pooled = bouncer
    airgate("db", "upgrade", AIRGATE_DATABASE_URL=direct)  # `migrate`: straight to PostgreSQL
    through = {"AIRGATE_DATABASE_URL": pooled, "AIRGATE_DB_PGBOUNCER": "true"}
    airgate("seed", "--demo", "--retailers", "3", **through)
    airgate("ledger", "verify", **through)
    for retailer in ("+254700000001", "+254700000002", "+254700000003"):
        airgate("balance", retailer, "--json", **through)
