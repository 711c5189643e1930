"""``airgate party low-stock`` through the real entry point (SQLite under the test's var dir)."""

from __future__ import annotations

import json

from tests.e2e.conftest import CliRunner


def test_a_party_low_stock_threshold_is_set_and_reset(airgate: CliRunner) -> None:
    airgate("db", "upgrade")
    airgate("seed", "--demo", "--retailers", "1")
    own = json.loads(airgate("party", "low-stock", "0700000001", "500", "--json").stdout)
    assert (own["low_stock_minor"], own["effective_low_stock_minor"]) == (50_000, 50_000)
    human = airgate("party", "low-stock", "0700000001", "default").stdout
    assert "low-stock alert below 1,000 of an operator's stock (the default)" in human
    bad = airgate("party", "low-stock", "0700000001", "lots", ok=False)
    assert bad.returncode != 0 and bad.stderr.startswith("airgate: ")
    assert bad.stderr.count("\n") == 1
