"""``airgate party region`` and ``airgate party tag`` through the real entry point."""

from __future__ import annotations

import json

from tests.e2e.conftest import CliRunner


def test_a_party_region_and_tags_are_set(airgate: CliRunner) -> None:
    airgate("db", "upgrade")
    airgate("seed", "--demo", "--retailers", "1")
    placed = json.loads(airgate("party", "region", "0700000001", " Nairobi", "--json").stdout)
    assert placed["region"] == "nairobi"
    tagged = json.loads(airgate("party", "tag", "0700000001", "Kiosk", "route-7", "--json").stdout)
    assert tagged["tags"] == ["kiosk", "route-7"]
    human = airgate("party", "tag", "0700000001", "--remove", "kiosk").stdout
    assert "tags route-7" in human
    bad = airgate("party", "tag", "0700000001", "two words", ok=False)
    assert bad.returncode != 0 and bad.stderr.startswith("airgate: not a tag: 'two words'")
    assert bad.stderr.count("\n") == 1
