"""``DtOneProvider`` against the sandbox's DT One face over real HTTP (rules: docs/PROVIDERS.md).

Clocks (tests/providers/conftest.py FAST): the adapter waits 0.3 s for a final status; the
sandbox's SUBMITTED settles 2.5 s after arrival; slow answers take 0.2 s (1.5 s for the time-out
case, against a 0.5 s client).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.errors import NotSent, OutcomeUnknown, ProviderRejected, ProviderUnavailable
from core.logging import secrets_of
from core.providers.dtone import DtOneProvider
from core.providers.port import Outcome
from core.settings import load_settings
from tests.providers.conftest import FAST, Sandbox, order, serve

AIRTIME = "30001"  # the sandbox's DT One product: Safaricom airtime, ranged
BUNDLES = "operator:1401"  # Safaricom's fixed products, picked by amount
KEY, SECRET = "dt-key-3f9a1c77e2", "dt-secret-8b6d0e5f4a21"


def dtone(url: str, **overrides: Any) -> DtOneProvider:
    args: dict[str, Any] = {
        "base_url": f"{url}/v1",
        "api_key": "sandbox",
        "api_secret": "sandbox",
        "timeout_s": 15.0,
        "connect_timeout_s": 1.0,
        "settle_s": 0.3,
    }
    return DtOneProvider(**{**args, **overrides})


@pytest.fixture
async def provider(sandbox: Sandbox) -> AsyncIterator[DtOneProvider]:
    adapter = dtone(sandbox.url)
    try:
        yield adapter
    finally:
        await adapter.close()


def sale(last_digit: int, reference: str, **changes: Any) -> Any:
    return order(last_digit, reference, **{"operator_ref": AIRTIME, **changes})


async def dtone_stats(sandbox: Sandbox, reference: str | None = None) -> dict[str, Any]:
    params = {"reference": reference} if reference else {}
    async with sandbox.http.get(f"{sandbox.url}/sandbox/dtone/stats", params=params) as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body


async def test_delivered_at_once(provider: DtOneProvider, sandbox: Sandbox) -> None:
    tx = await provider.send_topup(sale(0, "dt-ok"))
    assert (tx.outcome, tx.reference, tx.delivered_minor, tx.currency) == (
        Outcome.DELIVERED,
        "dt-ok",
        5_000,
        "KES",
    )
    assert tx.operator_ref and tx.provider_ref
    stats = await dtone_stats(sandbox, "dt-ok")
    assert (stats["deliveries_by_reference"], stats["sends_by_reference"]) == (1, 1)
    assert (await sandbox.stats())["requests"] == 0  # the Reloadly face saw nothing


async def test_declined_is_a_definite_failure(provider: DtOneProvider, sandbox: Sandbox) -> None:
    tx = await provider.send_topup(sale(1, "dt-no"))
    assert (tx.outcome, tx.message) == (Outcome.FAILED, "DECLINED-OPERATOR-CURRENTLY-UNAVAILABLE")
    assert (await dtone_stats(sandbox))["failed"] == 1


@pytest.mark.parametrize(("digit", "final"), [(2, Outcome.DELIVERED), (3, Outcome.FAILED)])
async def test_submitted_is_unknown_until_looked_up(
    provider: DtOneProvider, sandbox: Sandbox, digit: int, final: Outcome
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    start = (await provider.balance()).balance_minor
    tx = await provider.send_topup(sale(digit, f"dt-wait-{digit}"))
    assert (tx.outcome, tx.message) == (Outcome.UNKNOWN, "SUBMITTED")
    assert (await provider.balance()).balance_minor == start - 4_900  # held while SUBMITTED
    pending = await provider.find(reference=f"dt-wait-{digit}", since=since)
    assert pending is not None and pending.outcome is Outcome.UNKNOWN
    await asyncio.sleep(FAST.settle_s)
    found = await provider.find(reference=f"dt-wait-{digit}", since=since)
    assert found is not None and (found.outcome, found.provider_ref) == (final, tx.provider_ref)
    spent = 4_900 if final is Outcome.DELIVERED else 0  # a decline voids the hold
    assert (await provider.balance()).balance_minor == start - spent
    stats = await dtone_stats(sandbox, f"dt-wait-{digit}")
    assert stats["sends_by_reference"] == 1
    assert stats["deliveries_by_reference"] == int(final is Outcome.DELIVERED)


async def test_a_503_is_not_sent_and_the_resend_delivers_once(
    provider: DtOneProvider, sandbox: Sandbox
) -> None:
    since = datetime.now(UTC)
    with pytest.raises(ProviderUnavailable, match="1009503"):
        await provider.send_topup(sale(4, "dt-503"))
    assert await provider.find(reference="dt-503", since=since) is None  # nothing recorded
    tx = await provider.send_topup(sale(4, "dt-503"))
    assert tx.outcome is Outcome.DELIVERED
    stats = await dtone_stats(sandbox, "dt-503")
    assert (stats["sends_by_reference"], stats["deliveries_by_reference"]) == (2, 1)


async def test_a_repeated_reference_answers_the_original(
    provider: DtOneProvider, sandbox: Sandbox
) -> None:
    first = await provider.send_topup(sale(0, "dt-twice"))
    again = await provider.send_topup(sale(0, "dt-twice"))  # refused 1007001, then looked up
    assert (again.outcome, again.provider_ref) == (Outcome.DELIVERED, first.provider_ref)
    stats = await dtone_stats(sandbox, "dt-twice")
    assert (stats["duplicates"], stats["deliveries_by_reference"]) == (1, 1)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_never_sent_differs_from_unknown(sandbox: Sandbox) -> None:
    down = dtone(f"http://127.0.0.1:{_closed_port()}")
    try:
        with pytest.raises(NotSent, match="not sent"):
            await down.send_topup(sale(0, "dt-down"))
        with pytest.raises(NotSent, match="not sent"):  # a bundle's product lookup: same
            await down.send_topup(sale(0, "dt-down-b", operator_ref=BUNDLES, amount_minor=1_000))
    finally:
        await down.close()


@pytest.mark.parametrize("sandbox_config", [replace(FAST, slow_ms=1_500)])
async def test_a_time_out_after_sending_is_unknown_then_found(sandbox: Sandbox) -> None:
    hasty = dtone(sandbox.url, timeout_s=0.5)
    try:
        with pytest.raises(OutcomeUnknown):
            await hasty.send_topup(sale(5, "dt-slow"))
        await asyncio.sleep(1.2)
        found = await hasty.find(reference="dt-slow", since=datetime.now(UTC))
        assert found is not None and found.outcome is Outcome.DELIVERED
    finally:
        await hasty.close()


async def test_refused_credentials_send_nothing_and_show_no_secret(sandbox: Sandbox) -> None:
    wrong = dtone(sandbox.url, api_key=KEY, api_secret=SECRET)
    try:
        assert KEY not in repr(wrong) and SECRET not in repr(wrong)
        with pytest.raises(NotSent, match="credentials refused") as refused:
            await wrong.send_topup(sale(0, "dt-creds"))
        shown = f"{refused.value} {refused.value!r} {refused.value.fields}"
        assert KEY not in shown and SECRET not in shown
    finally:
        await wrong.close()
    assert (await dtone_stats(sandbox, "dt-creds"))["sends_by_reference"] == 0


def test_the_settings_mask_the_key_and_secret() -> None:
    settings = load_settings(provider="dtone", dtone_api_key=KEY, dtone_api_secret=SECRET)
    assert KEY not in repr(settings) and SECRET not in repr(settings)
    assert {KEY, SECRET} <= set(secrets_of(settings))  # every log line masks them
    adapter = DtOneProvider.from_settings(settings)
    assert repr(adapter) == "DtOneProvider(base_url='http://127.0.0.1:8090/v1')"


async def test_bad_orders_are_refused_before_sending(provider: DtOneProvider) -> None:
    with pytest.raises(ProviderRejected, match="not a DT One product id"):
        await provider.send_topup(sale(0, "dt-bad", operator_ref="safaricom"))
    with pytest.raises(ProviderRejected, match="out of range"):
        await provider.send_topup(sale(0, "dt-big", amount_minor=99_999_999))


async def test_a_bundle_is_the_operators_fixed_product_of_that_amount(
    provider: DtOneProvider, sandbox: Sandbox
) -> None:
    tx = await provider.send_topup(sale(0, "dt-bundle", operator_ref=BUNDLES, amount_minor=25_000))
    assert (tx.outcome, tx.delivered_minor) == (Outcome.DELIVERED, 25_000)
    with pytest.raises(ProviderRejected, match="no fixed product"):
        await provider.send_topup(sale(0, "dt-odd", operator_ref=BUNDLES, amount_minor=12_300))


async def test_lookups_balance_and_reconciliation(
    provider: DtOneProvider, sandbox: Sandbox
) -> None:
    start = datetime.now(UTC) - timedelta(minutes=1)
    before = await provider.balance()
    for i, digit in enumerate((0, 1, 0)):
        await provider.send_topup(sale(digit, f"dt-rec-{i}"))
    after = await provider.balance()
    assert before.currency == "KES" and before.balance_minor - after.balance_minor == 2 * 4_900
    end = datetime.now(UTC) + timedelta(minutes=1)
    seen = {tx.reference: tx.outcome async for tx in provider.transactions(start=start, end=end)}
    assert seen == {
        "dt-rec-0": Outcome.DELIVERED,
        "dt-rec-1": Outcome.FAILED,
        "dt-rec-2": Outcome.DELIVERED,
    }
    detected = await provider.detect_operator(msisdn="+254712345670", country="KE")
    assert (detected.ref, detected.denomination_type, detected.bundle) == (AIRTIME, "RANGE", False)
    products = await provider.operators(country="KE")
    assert {p.ref for p in products if not p.bundle} == {"30001", "30002", "30003"}
    assert any(p.bundle and p.fixed_amounts_minor == (25_000,) for p in products)


@pytest.mark.parametrize(
    ("status", "body", "error", "not_sent"),
    [
        (429, b'{"errors": [{"code": 1000429, "message": "Too many requests"}]}', NotSent, True),
        (503, b'{"errors": [{"code": 1009503, "message": "Service unavailable"}]}',
         ProviderUnavailable, False),
        (400, b'{"errors": [{"code": 1006001, "message": "Insufficient balance"}]}',
         ProviderRejected, False),
        (201, b"<html>gateway</html>", OutcomeUnknown, False),
        (302, b"", OutcomeUnknown, False),
    ],
)  # fmt: skip
async def test_answers_the_sandbox_never_gives(
    status: int, body: bytes, error: type[Exception], not_sent: bool
) -> None:
    """A tiny external server: 429 was refused before processing (NotSent, routing may go
    elsewhere); a 5xx may have been half-processed (unavailable, not NotSent); a broken 2xx or a
    redirect after the request left is unknown."""
    from aiohttp import web

    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/async/transactions", answer)
    async with serve(app) as url:
        adapter = dtone(url)
        try:
            with pytest.raises(error) as raised:
                await adapter.send_topup(sale(0, "dt-odd-answer"))
        finally:
            await adapter.close()
    assert isinstance(raised.value, NotSent) is not_sent
