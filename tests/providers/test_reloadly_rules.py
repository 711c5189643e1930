"""Every last-digit rule of the sandbox, through the adapter (docs/PROVIDERS.md has the table)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from core.errors import OutcomeUnknown, ProviderRejected, ProviderUnavailable
from core.money import discounted_price
from core.providers.port import Outcome, ProviderTransaction
from core.providers.reloadly import ReloadlyProvider
from tests.providers.conftest import FAST, HASTY_TIMEOUT_S, Sandbox, order

SINCE = timedelta(minutes=1)


async def _find(provider: ReloadlyProvider, reference: str) -> ProviderTransaction | None:
    return await provider.find(reference=reference, since=datetime.now(UTC) - SINCE)


async def _settled(provider: ReloadlyProvider, reference: str) -> ProviderTransaction:
    deadline = time.monotonic() + 30
    while True:
        tx = await _find(provider, reference)
        assert tx is not None
        if tx.outcome is not Outcome.UNKNOWN:
            return tx
        assert time.monotonic() < deadline, f"{reference} still pending after 30 s"
        await asyncio.sleep(0.05)


async def test_other_digits_deliver_at_once(sandbox: Sandbox, provider: ReloadlyProvider) -> None:
    tx = await provider.send_topup(order(0, "ok-0"))
    assert tx.outcome is Outcome.DELIVERED and tx.reference == "ok-0"
    assert tx.delivered_minor == 5_000 and tx.currency == "KES"
    assert tx.provider_ref is not None and tx.operator_ref
    assert await _find(provider, "ok-0") == tx
    stats = await sandbox.stats("ok-0")
    assert (stats["delivered"], stats["deliveries_by_reference"], stats["failed"]) == (1, 1, 0)


async def test_1_is_declined_and_recorded_failed(
    sandbox: Sandbox, provider: ReloadlyProvider
) -> None:
    with pytest.raises(ProviderRejected) as refused:
        await provider.send_topup(order(1, "decline-1"))
    assert refused.value.fields["error_code"] == "TRANSACTION_CANNOT_BE_PROCESSED_AT_THE_MOMENT"
    tx = await _find(provider, "decline-1")
    assert tx is not None and tx.outcome is Outcome.FAILED and tx.delivered_minor is None
    stats = await sandbox.stats()
    assert (stats["delivered"], stats["failed"]) == (0, 1)
    assert (await provider.balance()).balance_minor == FAST.initial_balance_minor  # not charged


async def test_2_times_out_then_is_found_pending_then_delivered(
    sandbox: Sandbox, provider: ReloadlyProvider, hasty: ReloadlyProvider
) -> None:
    with pytest.raises(OutcomeUnknown):
        await hasty.send_topup(order(2, "hang-2"))
    assert FAST.settle_s - HASTY_TIMEOUT_S >= 2  # so it is still in flight now, with 2 s to spare
    pending = await _find(provider, "hang-2")
    assert pending is not None and pending.outcome is Outcome.UNKNOWN
    assert (await sandbox.stats())["pending"] == 1
    delivered = await _settled(provider, "hang-2")
    assert delivered.outcome is Outcome.DELIVERED and delivered.delivered_minor == 5_000
    # Sending again (what the lifecycle does after a "not found") returns the original.
    again = await provider.send_topup(order(2, "hang-2"))
    assert again.provider_ref == delivered.provider_ref
    stats = await sandbox.stats("hang-2")
    assert (stats["delivered"], stats["pending"], stats["deliveries_by_reference"]) == (1, 0, 1)


async def test_3_times_out_then_is_refunded(
    sandbox: Sandbox, provider: ReloadlyProvider, hasty: ReloadlyProvider
) -> None:
    with pytest.raises(OutcomeUnknown):
        await hasty.send_topup(order(3, "hang-3"))
    tx = await _settled(provider, "hang-3")
    assert tx.outcome is Outcome.FAILED
    stats = await sandbox.stats()
    assert (stats["delivered"], stats["failed"]) == (0, 1)
    assert (await provider.balance()).balance_minor == FAST.initial_balance_minor  # refunded


async def test_4_is_unavailable_once_then_delivers_once(
    sandbox: Sandbox, provider: ReloadlyProvider
) -> None:
    with pytest.raises(ProviderUnavailable, match="HTTP 503"):
        await provider.send_topup(order(4, "flaky-4"))
    assert await _find(provider, "flaky-4") is None  # a 503 records nothing
    tx = await provider.send_topup(order(4, "flaky-4"))
    assert tx.outcome is Outcome.DELIVERED
    stats = await sandbox.stats("flaky-4")
    assert (stats["errors_5xx"], stats["delivered"], stats["deliveries_by_reference"]) == (1, 1, 1)


async def test_5_is_slow_but_within_the_time_out(
    sandbox: Sandbox, provider: ReloadlyProvider
) -> None:
    started = time.monotonic()
    tx = await provider.send_topup(order(5, "slow-5"))
    assert tx.outcome is Outcome.DELIVERED
    assert time.monotonic() - started >= FAST.slow_ms / 1000
    assert (await sandbox.stats())["delivered"] == 1


async def test_balance_falls_by_the_discounted_cost(provider: ReloadlyProvider) -> None:
    before = (await provider.balance()).balance_minor
    await provider.send_topup(order(0, "cost-1", amount_minor=12_345))
    after = await provider.balance()
    assert after.currency == "KES"
    assert before - after.balance_minor == discounted_price(12_345, FAST.discount_bps)


@pytest.mark.parametrize("amount_minor", [500, 1_001, 12_345, 99_999, 999_999, 1_000_000])
async def test_amounts_travel_exactly(provider: ReloadlyProvider, amount_minor: int) -> None:
    tx = await provider.send_topup(order(6, f"amount-{amount_minor}", amount_minor=amount_minor))
    assert tx.delivered_minor == amount_minor
    found = await _find(provider, f"amount-{amount_minor}")
    assert found is not None and found.delivered_minor == amount_minor
