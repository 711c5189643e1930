"""What the CLI prints for a person: what it did, in words, amounts with their currency, times in
``AIRGATE_TIMEZONE`` with the zone named, tables that fit an 80-column terminal."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.conftest import CliRunner

SHOP = "+254700000001"


@pytest.fixture
def demo(airgate: CliRunner, cli_env: dict[str, str], redis_url: str) -> CliRunner:
    cli_env["AIRGATE_REDIS_URL"] = redis_url
    airgate("seed", "--demo", "--retailers", "1")
    return airgate


def _send(cli: CliRunner, *args: str) -> dict[str, str]:
    sent: dict[str, str] = json.loads(
        cli("topup", "send", SHOP, *args, "--pin-stdin", "--json", stdin="1234\n").stdout
    )
    return sent


def _local(iso: str, zone: str) -> str:
    return f"{datetime.fromisoformat(iso).astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M}"


@pytest.mark.parametrize(
    ("zone", "named"), [("Africa/Nairobi", "EAT"), ("Asia/Dubai", "Asia/Dubai")]
)
def test_topup_list_fits_80_columns_in_local_time(demo: CliRunner, zone: str, named: str) -> None:
    airtime = _send(demo, "0712345670", "4,000")
    bundle = _send(demo, "0712345679", "--bundle", "safaricom-ke:data-100mb-1d")
    shown = demo("topup", "list", COLUMNS="80", AIRGATE_TIMEZONE=zone).stdout
    lines = shown.splitlines()
    assert all(len(line) <= 80 for line in lines), shown
    assert f"({named})" in lines[0]
    for sent in (airtime, bundle):  # the id and the number whole, the time local
        row = next(line for line in lines if sent["id"] in line)
        assert sent["msisdn"] in row and _local(sent["created_at"], zone) in row, shown
    assert "KES 4,000" in shown and "KES 20" in shown


def test_topup_show_reads_as_a_persons_view(demo: CliRunner) -> None:
    sent = _send(demo, "0712345670", "50")
    shown = demo("topup", "show", sent["id"], AIRGATE_TIMEZONE="Africa/Nairobi").stdout
    assert "_minor" not in shown and "None" not in shown and "_at" not in shown, shown
    assert "KES 50" in shown and "5000" not in shown
    assert "Demo Shop 001 (+254700000001)" in shown and "+254712345670" in shown
    assert f"{_local(sent['created_at'], 'Africa/Nairobi')}" in shown and "EAT" in shown
    assert "finished" not in shown  # not yet: absent, not "None"


def test_stock_sell_says_what_it_sold_to_whom(demo: CliRunner) -> None:
    shown = demo("stock", "sell", "0700000001", "safaricom-ke", "1000").stdout
    first = shown.splitlines()[0]
    assert "KES 1,000" in first and "Safaricom" in first, shown
    assert "to Demo Shop 001 (+254700000001)" in first
    assert "from Demo Distributor (+254700000100)" in first
    assert "KES 975" in shown  # the price after the 2.5 % discount, with its currency


def test_party_unlock_says_whose_pin(demo: CliRunner) -> None:
    shown = demo("party", "unlock", SHOP).stdout
    assert shown.startswith("unlocked the PIN of Demo Shop 001 (+254700000001)"), shown
