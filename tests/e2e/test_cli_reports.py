"""``airgate statement`` and ``airgate report daily`` through the real entry point: the statement is
byte for byte the document the Telegram /statement sends (both built by core.services.statement),
and the daily report's CSV has the demo's parties with their figures."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from core.context import open_core
from core.services import statement
from core.settings import load_settings
from tests.conftest import TEST_PEPPER
from tests.e2e.conftest import CliRunner

DISTRIBUTOR, SHOP = "+254700000100", "+254700000001"


@pytest.fixture
def cli(airgate: CliRunner, database_url: str, cli_env: dict[str, str]) -> CliRunner:
    cli_env["AIRGATE_DATABASE_URL"] = database_url
    return airgate


def _in_process(database_url: str, var_dir: str, first: str, last: str) -> bytes:
    async def main() -> bytes:
        settings = load_settings(database_url=database_url, var_dir=var_dir, pin_pepper=TEST_PEPPER)
        async with open_core(settings) as core:
            doc = await statement.for_days(
                core,
                party_id=2 + 1,  # the demo's first retailer (platform #1, distributor #2)
                first=datetime.fromisoformat(first).date(),
                last=datetime.fromisoformat(last).date(),
            )
            return statement.as_csv(doc, zone=settings.timezone)

    return asyncio.run(main())


@pytest.mark.timeout(240)
def test_statement_and_daily_report_from_the_command_line(
    cli: CliRunner, database_url: str, cli_env: dict[str, str]
) -> None:
    cli("seed", "--demo")
    cli("topup", "send", SHOP, "0712345670", "50", "--pin-stdin", stdin="1234\n")
    today = datetime.now(ZoneInfo("Africa/Nairobi")).date().isoformat()
    printed = cli("statement", SHOP, "--from", today, "--to", today, "--csv").stdout
    rows = list(csv.reader(io.StringIO(printed)))
    assert rows[0] == ["date", "time", "kind", "asset", "amount", "balance", "reference"]
    assert rows[-1][2:6] == ["reserve", "AIRTIME:safaricom-ke", "-50", "4950"]
    same = _in_process(database_url, cli_env["AIRGATE_VAR_DIR"], today, today)
    assert printed.splitlines() == same.decode().splitlines()  # text mode turned \r\n into \n
    human = cli("statement", SHOP, "--from", today, "--to", today).stdout
    assert "closing: AIRTIME:airtel-ke 5000, AIRTIME:safaricom-ke 4950" in human

    table = list(csv.DictReader(io.StringIO(cli("report", "daily", "--csv").stdout)))
    assert len(table) == 11  # the distributor and its ten retailers
    shop = next(row for row in table if row["msisdn"] == SHOP)
    assert (shop["pending"], shop["stock_bought"], shop["delivered"]) == ("1", "15000", "0")
    one = cli("report", "daily", "--date", today, "--party", DISTRIBUTOR).stdout
    assert "Retailers: 0 active, 10 inactive" in one
    bad = cli("report", "daily", "--date", "2026-13-01", ok=False)
    assert (
        bad.returncode == 1 and bad.stderr == "airgate: '2026-13-01' is not a date (YYYY-MM-DD)\n"
    )
