"""The CLI through its real entry point, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import text

from core.db import head_revision, make_engine
from core.settings import load_settings
from tests.e2e.conftest import CliRunner

PLATFORM, DISTRIBUTOR, SHOP = "+254799999999", "0711900000", "0711000001"


@pytest.fixture
def cli(airgate: CliRunner, database_url: str, cli_env: dict[str, str]) -> CliRunner:
    cli_env["AIRGATE_DATABASE_URL"] = database_url
    return airgate


def _json(result: object) -> object:
    return json.loads(result.stdout)  # type: ignore[attr-defined]


def _one_line_error(result: object) -> str:
    stderr: str = result.stderr  # type: ignore[attr-defined]
    assert stderr.startswith("airgate: ") and stderr.count("\n") == 1, stderr
    return stderr


async def _tamper(database_url: str) -> None:
    engine = make_engine(load_settings(database_url=database_url).database_url)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE account SET balance_minor = balance_minor + 1 WHERE kind = 'main' "
                "AND asset = 'AIRTIME:safaricom-ke' AND party_id IS NOT NULL"
            )
        )
    await engine.dispose()


# About 30 processes, each importing the whole app: a minute alone, longer beside other workers.
@pytest.mark.timeout(300)
def test_a_distributor_day_through_the_cli(cli: CliRunner, database_url: str) -> None:
    assert f"revision {head_revision()}" in cli("db", "upgrade").stdout
    assert "3 operators" in cli("catalog", "load", "--demo").stdout
    cli("party", "add", "--role", "platform", "--name", "AirGate", "--msisdn", PLATFORM, "--no-pin")
    cli(
        "party",
        "add",
        "--role",
        "distributor",
        "--name",
        "Dist",
        "--msisdn",
        DISTRIBUTOR,
        "--parent",
        PLATFORM,
        "--pin-stdin",
        stdin="1234\n",
    )
    shop = _json(
        cli(
            "party",
            "add",
            "--role",
            "retailer",
            "--name",
            "Shop",
            "--msisdn",
            SHOP,
            "--parent",
            DISTRIBUTOR,
            "--pin-stdin",
            "--json",
            stdin="4321\n",
        )
    )
    assert shop["msisdn"] == "+254711000001" and shop["pin_set"]  # type: ignore[index]
    assert "pin_hash" not in shop and "4321" not in json.dumps(shop)

    cli("agreement", "set", SHOP, "--discount-bps", "250", "--operator", "safaricom-ke")
    assert _json(cli("agreement", "list", SHOP, "--json"))[0]["discount_bps"] == 250  # type: ignore[index]
    cli("agreement", "set", SHOP, "--discount-bps", "0")  # all operators; safaricom-ke keeps 250
    cli("stock", "intake", "safaricom-ke", "10,000", "--reference", "PO-1")
    cli("deposit", DISTRIBUTOR, "10000", "--reference", "D-1")  # to its parent, the platform
    cli("stock", "sell", DISTRIBUTOR, "safaricom-ke", "10000")
    cli("deposit", SHOP, "600", "--reference", "M-PESA-1")
    repeat = cli("deposit", SHOP, "600", "--reference", "M-PESA-1", ok=False)
    assert repeat.returncode == 1 and "already recorded" in _one_line_error(repeat)
    sale = _json(cli("stock", "sell", SHOP, "safaricom-ke", "500", "--json"))
    assert sale["price_minor"] == 48_750  # type: ignore[index]  (2.5 % off KES 500)
    too_much = cli("stock", "sell", SHOP, "safaricom-ke", "500", ok=False)
    assert "can pay" in _one_line_error(too_much)

    balance = _json(cli("balance", SHOP, "--json"))
    assert balance["stock"]["safaricom-ke"]["available"] == 50_000  # type: ignore[index]
    assert balance["cash"]["KES"]["cash"] == 11_250  # type: ignore[index]
    listed = _json(cli("party", "list", "--role", "retailer", "--json"))
    assert [p["msisdn"] for p in listed] == ["+254711000001"]  # type: ignore[union-attr,index]
    cli("party", "suspend", SHOP)
    assert _json(cli("party", "show", SHOP, "--json"))["status"] == "suspended"  # type: ignore[index]
    cli("party", "activate", SHOP)
    cli("party", "set-pin", SHOP, "--pin-stdin", stdin="5555\n")
    cli("party", "unlock", SHOP)
    assert "ledger OK" in cli("ledger", "verify").stdout

    asyncio.run(_tamper(database_url))
    broken = cli("ledger", "verify", ok=False)
    assert broken.returncode == 1 and "PROBLEM" in broken.stdout
    assert "transfers say" in broken.stdout


def test_seed_is_deterministic_and_rerunnable(cli: CliRunner) -> None:
    cli("db", "upgrade")
    cli("seed", "--demo", "--retailers", "3")
    first = cli("balance", "+254700000003", "--json").stdout
    cli("seed", "--demo", "--retailers", "3")
    assert cli("balance", "+254700000003", "--json").stdout == first
    assert json.loads(first)["stock"]["telkom-ke"]["available"] == 500_000
    assert "ledger OK" in cli("ledger", "verify").stdout


def test_errors_are_one_line_without_traceback(airgate: CliRunner) -> None:
    bad = airgate("balance", "0700000001", ok=False, AIRGATE_HTTP_PORT="abc")
    assert bad.returncode == 2 and "AIRGATE_HTTP_PORT" in _one_line_error(bad)
    airgate("db", "upgrade")
    missing = airgate("balance", "0700000999", ok=False)
    assert missing.returncode == 1 and "no party" in _one_line_error(missing)
    invalid = airgate("balance", "not-a-number", ok=False)
    assert "not a valid phone number" in _one_line_error(invalid)
    amount = airgate("stock", "intake", "safaricom-ke", "5.001", "--reference", "x", ok=False)
    assert "not an amount" in _one_line_error(amount)
    pin = airgate("party", "set-pin", "0700000001", "--pin-stdin", stdin="12\n", ok=False)
    assert "4 to 6 digits" in _one_line_error(pin)


def test_credit_limit_from_the_cli(airgate: CliRunner) -> None:
    airgate("db", "upgrade")
    airgate("seed", "--demo", "--retailers", "1")
    shown = json.loads(airgate("party", "credit-limit", "0700000001", "0.0", "--json").stdout)
    assert shown["credit_limit_minor"] == 0
    platform = airgate("party", "credit-limit", "+254700000000", "100", ok=False)
    assert "no parent" in _one_line_error(platform)
    assert "ledger OK" in airgate("ledger", "verify").stdout


def test_worker_refuses_an_unmigrated_database_in_one_line(airgate: CliRunner) -> None:
    result = airgate("worker", ok=False)
    assert result.returncode == 2  # a SettingsError, like any bad setting
    assert "run `airgate db upgrade`" in result.stderr and len(result.stderr.splitlines()) == 1
