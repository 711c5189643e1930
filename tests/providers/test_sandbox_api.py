"""The sandbox's own HTTP surface: auth codes, validation, status, knobs, inspection routes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from core.errors import ProviderRejected, ProviderUnavailable
from core.providers.port import Outcome
from core.providers.reloadly import ReloadlyProvider
from sandbox.config import SandboxConfig
from tests.providers.conftest import Sandbox, order

BODY = {
    "operatorId": 1,
    "amount": 50,
    "useLocalAmount": True,
    "customIdentifier": "api-1",
    "recipientPhone": {"countryCode": "KE", "number": "0712345670"},
}
BAD_PHONE = {"countryCode": "KE", "number": "12"}


async def _token(sandbox: Sandbox) -> str:
    credentials = {"client_id": "sandbox", "client_secret": "sandbox"}
    credentials["grant_type"] = "client_credentials"
    async with sandbox.http.post(f"{sandbox.url}/oauth/token", json=credentials) as resp:
        body = await resp.json()
    assert resp.status == 200 and body["token_type"] == "Bearer" and body["expires_in"] >= 1
    token: str = body["access_token"]
    return token


async def _call(
    sandbox: Sandbox, method: str, path: str, *, token: str | None, **kw: Any
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with sandbox.http.request(method, sandbox.url + path, headers=headers, **kw) as resp:
        return resp.status, await resp.json()


@pytest.mark.parametrize(
    "credentials",
    [
        {"client_id": "sandbox", "client_secret": "nope", "grant_type": "client_credentials"},
        {"client_id": "x", "client_secret": "sandbox", "grant_type": "client_credentials"},
    ],
)
async def test_wrong_credentials_get_401(sandbox: Sandbox, credentials: dict[str, str]) -> None:
    async with sandbox.http.post(f"{sandbox.url}/oauth/token", json=credentials) as resp:
        assert resp.status == 401
        assert (await resp.json())["errorCode"] == "INVALID_CREDENTIALS"


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(token_ttl_s=2)])
async def test_api_routes_need_a_live_token(sandbox: Sandbox) -> None:
    status, body = await _call(sandbox, "GET", "/accounts/balance", token=None)
    assert (status, body["errorCode"], body["path"]) == (401, "INVALID_TOKEN", "/accounts/balance")
    status, body = await _call(sandbox, "GET", "/accounts/balance", token="made-up")
    assert (status, body["errorCode"]) == (401, "INVALID_TOKEN")
    token = await _token(sandbox)
    status, body = await _call(sandbox, "GET", "/accounts/balance", token=token)
    assert (status, body["currencyCode"]) == (200, "KES")
    deadline = time.monotonic() + 30  # the token's 2 s run out
    while (status := (await _call(sandbox, "GET", "/accounts/balance", token=token))[0]) == 200:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    status, body = await _call(sandbox, "GET", "/accounts/balance", token=token)
    assert (status, body["errorCode"]) == (401, "TOKEN_EXPIRED")


async def test_topup_status_and_unknown_ids(sandbox: Sandbox) -> None:
    token = await _token(sandbox)
    status, tx = await _call(sandbox, "POST", "/topups", token=token, json=BODY)
    assert (status, tx["status"], tx["recipientPhone"], tx["requestedAmount"]) == (
        200,
        "SUCCESSFUL",
        "254712345670",
        50,
    )
    assert tx["balanceInfo"]["cost"] == 49 and tx["transactionDate"][10] == " "
    status, body = await _call(sandbox, "GET", f"/topups/{tx['transactionId']}/status", token=token)
    assert (status, body["code"], body["status"]) == (200, None, "SUCCESSFUL")
    assert body["transaction"] == tx
    status, body = await _call(sandbox, "GET", "/topups/999999/status", token=token)
    assert (status, body["errorCode"]) == (404, "TRANSACTION_NOT_FOUND")


@pytest.mark.parametrize(
    ("body", "error_code"),
    [
        ("not json", "INVALID_REQUEST_BODY"),
        ([1, 2], "INVALID_REQUEST_BODY"),
        ({**BODY, "customIdentifier": ""}, "INVALID_CUSTOM_IDENTIFIER"),
        ({**BODY, "amount": 10.001}, "INVALID_AMOUNT"),
        ({**BODY, "amount": -5}, "INVALID_AMOUNT"),
        ({**BODY, "recipientPhone": None}, "INVALID_RECIPIENT_PHONE"),
        ({**BODY, "recipientPhone": BAD_PHONE}, "INVALID_RECIPIENT_PHONE"),
    ],
)
async def test_validation_errors_are_400_with_a_code(
    sandbox: Sandbox, body: object, error_code: str
) -> None:
    token = await _token(sandbox)
    kw: dict[str, Any] = {"data": body} if isinstance(body, str) else {"json": body}
    status, answer = await _call(sandbox, "POST", "/topups", token=token, **kw)
    assert (status, answer["errorCode"], answer["path"]) == (400, error_code, "/topups")
    assert set(answer) >= {"timeStamp", "message", "path", "errorCode"}


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(decline_rate=1.0, seed=3)])
async def test_decline_rate(sandbox: Sandbox, provider: ReloadlyProvider) -> None:
    with pytest.raises(ProviderRejected):
        await provider.send_topup(order(0, "rate-1"))
    assert (await sandbox.stats())["failed"] == 1


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(error_rate=1.0, seed=3)])
async def test_error_rate(sandbox: Sandbox, provider: ReloadlyProvider) -> None:
    with pytest.raises(ProviderUnavailable):
        await provider.send_topup(order(0, "rate-1"))
    stats = await sandbox.stats()
    assert (stats["errors_5xx"], stats["failed"], stats["delivered"]) == (1, 0, 0)


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(decline_rate=0.5, seed=11)])
async def test_the_seed_makes_random_outcomes_repeatable(
    sandbox: Sandbox, provider: ReloadlyProvider
) -> None:
    async def run() -> list[bool]:
        outcomes = []
        for n in range(20):
            try:
                await provider.send_topup(order(0, f"seed-{n}"))
                outcomes.append(True)
            except ProviderRejected:
                outcomes.append(False)
        return outcomes

    first = await run()
    await sandbox.reset()
    assert await run() == first and 0 < sum(first) < 20


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(latency_ms=150, digit_rules=False)])
async def test_latency_and_no_digit_rules(sandbox: Sandbox, provider: ReloadlyProvider) -> None:
    await provider.balance()  # the token is not what we time
    started = time.monotonic()
    tx = await provider.send_topup(order(1, "no-rules"))  # …1 would decline with the rules on
    assert tx.outcome is Outcome.DELIVERED and time.monotonic() - started >= 0.15


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(initial_balance_minor=6_000)])
async def test_insufficient_balance(sandbox: Sandbox, provider: ReloadlyProvider) -> None:
    await provider.send_topup(order(0, "first"))  # KES 49 of KES 60
    with pytest.raises(ProviderRejected) as refused:
        await provider.send_topup(order(0, "second"))
    assert refused.value.fields["error_code"] == "INSUFFICIENT_BALANCE"
    assert (await provider.balance()).balance_minor == 6_000 - 4_900


async def test_reset_empties_everything(sandbox: Sandbox, provider: ReloadlyProvider) -> None:
    await provider.send_topup(order(0, "before-reset"))
    await sandbox.reset()
    stats = await sandbox.stats("before-reset")
    assert (stats["delivered"], stats["requests"], stats["deliveries_by_reference"]) == (0, 0, 0)
    assert await sandbox.sms() == []


async def test_sms_filter_survives_a_plus_turned_into_a_space(sandbox: Sandbox) -> None:
    form = {"username": "sandbox", "to": "+254712345678", "message": "hi"}
    async with sandbox.http.post(
        f"{sandbox.url}/version1/messaging", data=form, headers={"apiKey": "sandbox"}
    ) as resp:
        assert resp.status == 201
    # A hand-written ?to=+2547… arrives as " 2547…".
    async with sandbox.http.get(f"{sandbox.url}/sandbox/sms?to=+254712345678&limit=1") as resp:
        [message] = await resp.json()
    assert message["number"] == "+254712345678"


async def test_an_outage_answers_503_until_switched_off_and_only_a_boolean_switches_it(
    sandbox: Sandbox,
) -> None:
    token = await _token(sandbox)
    tamper = f"{sandbox.url}/sandbox/tamper"
    async with sandbox.http.post(tamper, json={"outage": "yes"}) as resp:
        assert resp.status == 400 and "true or false" in (await resp.json())["error"]
    async with sandbox.http.post(tamper, json={"outage": True}) as resp:
        assert resp.status == 200 and await resp.json() == {"outage": True}
    status, _ = await _call(sandbox, "GET", "/accounts/balance", token=token)
    assert status == 503
    async with sandbox.http.get(f"{sandbox.url}/sandbox/stats") as resp:
        assert resp.status == 200  # inspection goes on
    async with sandbox.http.post(tamper, json={"outage": False}) as resp:
        assert resp.status == 200
    status, _ = await _call(sandbox, "GET", "/accounts/balance", token=token)
    assert status == 200
