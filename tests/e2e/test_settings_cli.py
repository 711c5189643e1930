"""A bad setting stops any command, long-running ones included, with one line and exit status 2."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import CliRunner

BAD = [
    ("serve", "AIRGATE_TOPUP_STATUS_BACKOFF_S", "15,later"),
    ("worker", "AIRGATE_USSD_GATEWAYS", "{bad"),
    ("serve", "AIRGATE_LOG_LEVEL", "verbose"),
    ("demo", "AIRGATE_HTTP_PROT", "8081"),
    ("db current", "AIRGATE_USSD_GATEWAYS", '{"hubtel": {"enabld": false}}'),
    ("bot --polling", "AIRGATE_TOPUP_STATUS_BACKOFF_S", "[]"),
    ("sandbox", "AIRGATE_PIN_PEPPER", "short"),
]


@pytest.mark.parametrize(("command", "name", "value"), BAD, ids=[f"{c}-{n}" for c, n, _ in BAD])
def test_a_bad_setting_is_one_line_and_status_2(
    airgate: CliRunner, command: str, name: str, value: str
) -> None:
    result = airgate(*command.split(), ok=False, **{name: value})
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"airgate: invalid setting {name}: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr

