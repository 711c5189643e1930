"""A command that cannot get at PostgreSQL says why in one line and exits non-zero, never a
traceback; many commands at once hold one connection each and leave the server usable."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from tests.conftest import PG_SKIP_REASON, PG_UP, pg_url
from tests.e2e.conftest import CliRunner, free_port
from tests.private_postgres import available, private_postgres, require

needs_pg = pytest.mark.skipif(not PG_UP, reason=PG_SKIP_REASON)


def one_line_failure(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """What a failed command printed: exactly one line, no traceback, naming the problem."""
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("airgate: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_a_closed_port(airgate: CliRunner) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/airgate"
    for command in (("db", "current"), ("ledger", "verify"), ("party", "list")):
        result = airgate(*command, ok=False, AIRGATE_DATABASE_URL=url)
        one_line_failure(result, "database is unavailable", "try again")
        assert result.returncode == 1


def test_a_server_that_never_answers(airgate: CliRunner, silent_server: int) -> None:
    url = f"postgresql://postgres@127.0.0.1:{silent_server}/airgate"
    result = airgate(
        "ledger", "verify", ok=False, AIRGATE_DATABASE_URL=url, AIRGATE_DB_CONNECT_TIMEOUT_S="1"
    )
    one_line_failure(result, "database is unavailable", "TimeoutError")


@needs_pg
def test_a_database_that_does_not_exist_names_the_setting(airgate: CliRunner) -> None:
    url = pg_url("airgate_no_such_database")
    result = airgate("db", "current", ok=False, AIRGATE_DATABASE_URL=url)
    one_line_failure(result, "AIRGATE_DATABASE_URL", "does not exist")
    assert result.returncode == 2  # a setting to fix (README, "Configuration")


def test_a_server_with_no_connection_left(airgate: CliRunner) -> None:
    """Every non-superuser slot held: the command says so; a superuser's psql still gets in."""
    require("PostgreSQL 15's binaries (/usr/lib/postgresql/15/bin)", present=available())
    with private_postgres(max_connections=6, reserved=3) as url:

        async def hold() -> list[asyncpg.Connection]:
            return [await asyncpg.connect(url) for _ in range(3)]

        async def release(held: list[asyncpg.Connection]) -> None:
            for conn in held:
                await conn.close()

        loop = asyncio.new_event_loop()
        held = loop.run_until_complete(hold())
        try:
            result = airgate("ledger", "verify", ok=False, AIRGATE_DATABASE_URL=url)
            one_line_failure(result, "database is unavailable", "TooManyConnectionsError")
            admin = url.replace("airgate@", "postgres@")
            psql = subprocess.run(["psql", admin, "-Atc", "SELECT 1"], capture_output=True)
            assert psql.stdout.strip() == b"1", psql.stderr
        finally:
            loop.run_until_complete(release(held))
            loop.close()
        assert airgate("db", "upgrade", AIRGATE_DATABASE_URL=url).returncode == 0


COMMANDS = 200
BURST = Path(__file__).with_name("cli_burst.py")


@pytest.mark.slow
@pytest.mark.timeout(280)
def test_many_commands_at_once(airgate: CliRunner, cli_env: dict[str, str]) -> None:
    """COMMANDS ``airgate ledger verify`` released together against a server that takes 20 of
    them at a time: each one succeeds or says why in one line; the server is usable after."""
    require("PostgreSQL 15's binaries (/usr/lib/postgresql/15/bin)", present=available())
    with private_postgres(max_connections=23, reserved=3) as url:
        assert airgate("db", "upgrade", AIRGATE_DATABASE_URL=url).returncode == 0
        burst = subprocess.run(
            [sys.executable, BURST, str(COMMANDS), "ledger", "verify"],
            capture_output=True,
            text=True,
            env={**cli_env, "AIRGATE_DATABASE_URL": url},
            timeout=240,
        )
        assert burst.returncode == 0, burst.stderr
        results = json.loads(burst.stdout)
        assert len(results) == COMMANDS
        failed = [(code, err) for code, err in results if code != 0]
        for code, err in results:
            assert "Traceback" not in err
            if code == 0:
                assert err == ""
        for _code, err in failed:
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("airgate: the database"), err
        assert len(failed) < COMMANDS
        after = airgate("ledger", "verify", AIRGATE_DATABASE_URL=url)
        assert after.returncode == 0
        psql = subprocess.run(["psql", url, "-Atc", "SELECT 1"], capture_output=True)
        assert psql.stdout.strip() == b"1"
        print(f"{COMMANDS} at once: {COMMANDS - len(failed)} verified, {len(failed)} refused")
