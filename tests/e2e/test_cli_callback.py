"""``airgate callback …`` through the real entry point: the secret once, every refusal one line."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import CliRunner

SHOP = "+254700000001"


@pytest.mark.timeout(300)
def test_callback_commands_show_the_secret_once_and_refuse_plainly(
    airgate: CliRunner, redis_url: str
) -> None:
    airgate("seed", "--demo", "--retailers", "2")
    # The defaults: https to public addresses only.
    for url, why in (
        ("http://example.com/cb", "must start with https://"),
        ("https://127.0.0.1/cb", "private, loopback or link-local"),
        ("https://169.254.169.254/", "private, loopback or link-local"),
    ):
        refused = airgate("callback", "set", SHOP, url, ok=False)
        assert refused.returncode == 1 and why in refused.stderr
        assert refused.stderr.startswith("airgate: ") and refused.stderr.count("\n") == 1
    dev = {
        "AIRGATE_CALLBACK_ALLOW_PRIVATE": "true",
        "AIRGATE_CALLBACK_ALLOW_HTTP": "true",
        "AIRGATE_REDIS_URL": redis_url,
    }
    made = json.loads(
        airgate("callback", "set", SHOP, "http://127.0.0.1:9/a", "--json", **dev).stdout
    )
    secret = made["secret"]
    assert made["created"] and secret.startswith("whsec_") and len(secret) == 70
    shown = airgate("callback", "show", SHOP, **dev).stdout
    assert "http://127.0.0.1:9/a" in shown and secret not in shown
    replaced = json.loads(
        airgate("callback", "set", SHOP, "http://127.0.0.1:9/b", "--json", **dev).stdout
    )
    assert replaced["secret"] is None and replaced["url"] == "http://127.0.0.1:9/b"
    human = airgate("callback", "rotate", SHOP, **dev).stdout
    assert "shown once" in human and "previous secret also signs until" in human
    new = next(w for w in human.split() if w.startswith("whsec_"))
    assert new != secret
    assert json.loads(airgate("callback", "log", SHOP, "--json", **dev).stdout) == []
    pinged = airgate("callback", "ping", SHOP, ok=False, **dev)  # nothing listens on port 9
    assert pinged.returncode == 1 and "evt_ping_" in pinged.stdout and "Connect" in pinged.stdout
    bad_state = airgate("callback", "log", SHOP, "--state", "lost", ok=False, **dev)
    assert bad_state.returncode == 2 and "lost" in bad_state.stderr
    missing = airgate("callback", "resend", SHOP, "999", ok=False, **dev)
    assert missing.stderr == "airgate: no callback delivery 999\n"
    assert json.loads(airgate("callback", "remove", SHOP, "--json", **dev).stdout) == {
        "removed": True
    }
    assert "no callback URL registered" in airgate("callback", "show", SHOP, **dev).stdout
    assert "no callback URL was registered" in airgate("callback", "remove", SHOP, **dev).stdout
