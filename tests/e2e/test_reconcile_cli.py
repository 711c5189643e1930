"""``airgate reconcile`` and ``airgate case list|show|resolve`` as a user runs them, against
``airgate sandbox`` and ``airgate worker`` processes: a mismatch injected at the sandbox becomes a
case, the console settles it, and a second reconciliation changes nothing."""

from __future__ import annotations

import json
import urllib.request
from datetime import datetime
from zoneinfo import ZoneInfo

from tests.e2e.test_topup_e2e import DELIVERED_NUMBER, SHOP, Rig, rig  # noqa: F401 - fixture

DISTRIBUTOR = "+254700000100"  # the demo shop's distributor, PIN 1234


def _tamper(base: str, edit: dict[str, object]) -> None:
    request = urllib.request.Request(
        f"{base}/sandbox/tamper",
        data=json.dumps(edit).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def test_a_mismatch_becomes_a_case_the_console_resolves(rig: Rig) -> None:  # noqa: F811
    sent = json.loads(rig.send(DELIVERED_NUMBER).stdout)
    assert rig.final(sent["id"])["state"] == "delivered"
    _tamper(rig.sandbox_url, {"reference": sent["id"], "status": "FAILED"})
    today = datetime.now(ZoneInfo("Africa/Nairobi")).date().isoformat()

    [report] = json.loads(rig.cli("reconcile", "--date", today, "--json").stdout)
    assert report["classes"]["status_mismatch"]["count"] == 1
    assert report["cases_opened"] == 1 and report["at_stake_minor"] == 5_000
    human = rig.cli("reconcile", "--date", today).stdout
    assert "status_mismatch" in human and "money at stake 50" in human
    assert "0 support case(s) opened" in human  # the second run changes nothing

    [case] = json.loads(rig.cli("case", "list", "--json").stdout)
    assert (case["reason"], case["topup_id"], case["state"]) == (
        "recon_status",
        sent["id"],
        "open",
    )
    shown = rig.cli("case", "show", str(case["id"])).stdout
    assert "recon_status" in shown and "0712345670" in shown and "evidence recon" in shown

    refused = rig.cli("case", "resolve", str(case["id"]), "--action", "close", ok=False)
    assert refused.returncode == 1 and "needs a note" in refused.stderr
    wrong = rig.cli(
        "case", "resolve", str(case["id"]), "--action", "close", "--note", "x",
        "--as", DISTRIBUTOR, "--pin-stdin", stdin="9999\n", ok=False,
    )  # fmt: skip
    assert wrong.returncode == 1 and "PIN" in wrong.stderr
    done = rig.cli(
        "case", "resolve", str(case["id"]), "--action", "close", "--note",
        "operator confirms the credit; the aggregator's report is wrong",
        "--as", DISTRIBUTOR, "--pin-stdin", stdin="1234\n",
    ).stdout  # fmt: skip
    assert f"Case {case['id']} closed." in done
    assert json.loads(rig.cli("case", "list", "--json").stdout) == []
    [closed] = json.loads(rig.cli("case", "list", "--all", "--json").stdout)
    assert (closed["resolution"], closed["resolved_by"].startswith("party:")) == ("closed", True)
    bad = rig.cli("reconcile", "--date", "yesterday", ok=False)
    assert bad.returncode == 1 and "expected YYYY-MM-DD" in bad.stderr
    assert "ledger OK" in rig.cli("ledger", "verify").stdout
    rig.stop_all()
    assert SHOP  # the demo retailer sent it
