"""No API key, and no full customer number, in any reply, log line (DEBUG and INFO, console and
JSON, as ``airgate serve`` writes them), Redis key or database row the API writes; the key's hash
and prefix only."""

from __future__ import annotations

import json
import re

import pytest

from core.logging import configure
from core.models import Scope
from tests.api.conftest import DISTRIBUTOR, RETAILER, Rig, auth
from tests.channels.test_no_leaks import dump_redis, dump_rows

CUSTOMER = "+254712345670"
MODES = [("DEBUG", False), ("DEBUG", True), ("INFO", True)]


def number_pattern(e164: str) -> re.Pattern[str]:
    country, subscriber = e164[1:-9], e164[-9:]
    return re.compile(rf"(?<!\d)(?:\+?{country}|0){subscriber}(?!\d)")


@pytest.fixture(params=MODES, ids=lambda m: f"{m[0]}-{'json' if m[1] else 'console'}")
def log_mode(request: pytest.FixtureRequest) -> tuple[str, bool]:
    return request.param


async def test_no_key_or_customer_number_leaves_its_place(
    rig: Rig, log_mode: tuple[str, bool], redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    level, as_json = log_mode
    configure(level=level, json=as_json)
    key = await rig.key(RETAILER, [Scope.TOPUP, Scope.READ])
    boss = await rig.key(DISTRIBUTOR, [Scope.READ])
    wrong = key[:-6] + "ZZZZZZ"  # a key that is almost right
    replies: list[str] = []

    async def call(method: str, path: str, key: str, **kw: object) -> None:
        response = await rig.client.request(method, "/api/v1" + path, headers=auth(key, "i"), **kw)
        replies.append(f"{response.status} {dict(response.headers)} {await response.text()}")

    body = {"msisdn": "0712345670", "amount_minor": 5000}
    await call("POST", "/topups", key, json=body)
    await call("POST", "/topups", key, json=body)  # replayed
    await call("POST", "/topups", key, json={**body, "amount_minor": 6000})  # key reused: 409
    await call("GET", "/topups", key)
    await call("GET", "/topups", boss)
    await call("GET", "/operator-lookup?msisdn=0712345670", key)
    await call("GET", "/operator-lookup?msisdn=0799999999999", key)  # not a number: 422
    await call("POST", "/topups", wrong, json=body)  # 401
    await call("GET", "/balance", f"{key} trailing")
    assert any(r.startswith("202 ") for r in replies) and any(r.startswith("401") for r in replies)
    captured = capsys.readouterr()
    logs = captured.out + captured.err
    if level == "DEBUG":
        assert "api.request" in logs and "agk_" in logs  # the prefix names the key
    if as_json:
        for line in captured.out.splitlines():
            json.loads(line)
    everything = {"replies": "\n".join(replies), "logs": logs}
    names, stored = await dump_redis(redis_url)
    numbered, other = await dump_rows(rig.core)
    everything |= {"redis keys": names, "redis values": stored, "rows": numbered + other}
    for where, text in everything.items():
        assert key not in text and wrong not in text, where
        assert key[12:] not in text and wrong[12:] not in text, where
    for where in ("replies", "logs", "redis keys"):
        assert not number_pattern(CUSTOMER).search(everything[where]), (where, everything[where])
