"""``airgate apikey``: the key printed once at creation (``--json`` carries it as ``key``), only
its prefix afterwards, an unknown scope refused in one line, a revoked key gone from the list."""

from __future__ import annotations

import json

from tests.e2e.conftest import CliRunner

SHOP = "+254700000001"


def test_create_list_revoke(airgate: CliRunner) -> None:
    airgate("seed", "--demo", "--retailers", "1")
    made = json.loads(airgate("apikey", "create", SHOP, "--scopes", "read,topup", "--json").stdout)
    key = made["key"]
    assert key.startswith("agk_") and made["prefix"] == key[:12]
    assert made["scopes"] == ["read", "topup"]
    human = airgate("apikey", "create", SHOP, "--scopes", "read", "--label", "till 2").stdout
    assert human.splitlines()[0].startswith("agk_") and "shown once" in human
    listed = airgate("apikey", "list", SHOP, "--json").stdout
    assert key not in listed and key[12:] not in listed
    assert [k["prefix"] for k in json.loads(listed)][0] == made["prefix"]
    table = airgate("apikey", "list", SHOP).stdout
    assert made["prefix"] in table and key not in table
    assert airgate("apikey", "revoke", made["prefix"]).stdout.strip() == f"revoked {made['prefix']}"
    left = json.loads(airgate("apikey", "list", SHOP, "--json").stdout)
    assert made["prefix"] not in [k["prefix"] for k in left]
    everything = json.loads(airgate("apikey", "list", SHOP, "--all", "--json").stdout)
    assert any(k["prefix"] == made["prefix"] and k["revoked_at"] for k in everything)
    bad = airgate("apikey", "create", SHOP, "--scopes", "read,admin", ok=False)
    assert bad.returncode == 1
    assert bad.stderr.startswith("airgate: unknown scope 'admin'")
    gone = airgate("apikey", "revoke", "agk_nothing1", ok=False)
    assert gone.returncode == 1 and "no API key" in gone.stderr
