"""One reference, one delivery: repeats (sequential or concurrent, in flight or settled) return the
original transaction as it stands, and the sandbox delivers it once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from core.errors import OutcomeUnknown
from core.providers.port import Outcome, ProviderTransaction
from core.providers.reloadly import ReloadlyProvider
from tests.providers.conftest import Sandbox, order


async def _until(
    sandbox: Sandbox, reference: str, ready: Callable[[dict[str, Any]], bool], timeout_s: float = 30
) -> dict[str, Any]:
    """The sandbox's stats for ``reference`` once ``ready`` holds (polled, a generous deadline)."""
    deadline = time.monotonic() + timeout_s
    while not ready(stats := await sandbox.stats(reference)):
        assert time.monotonic() < deadline, stats
        await asyncio.sleep(0.02)
    return stats


async def test_a_repeat_returns_the_original(sandbox: Sandbox, provider: ReloadlyProvider) -> None:
    first = await provider.send_topup(order(0, "dup-1"))
    again = await provider.send_topup(order(0, "dup-1", amount_minor=9_900))  # body ignored
    assert again == first and again.delivered_minor == 5_000
    stats = await sandbox.stats("dup-1")
    assert (stats["delivered"], stats["duplicates"], stats["deliveries_by_reference"]) == (1, 1, 1)
    assert stats["sends_by_reference"] == 2  # the sandbox counts what it refused to deliver


async def test_twenty_concurrent_sends_of_one_reference_deliver_once(
    sandbox: Sandbox, provider: ReloadlyProvider
) -> None:
    results = await asyncio.gather(*(provider.send_topup(order(0, "burst")) for _ in range(20)))
    assert {tx.provider_ref for tx in results} == {results[0].provider_ref}
    assert all(tx.outcome is Outcome.DELIVERED for tx in results)
    stats = await sandbox.stats("burst")
    assert (stats["delivered"], stats["duplicates"], stats["requests"]) == (1, 19, 20)
    assert (stats["deliveries_by_reference"], stats["double_deliveries"]) == (1, 0)
    assert stats["sends_by_reference"] == 20


async def test_repeats_while_the_first_is_in_flight_see_it_pending(
    sandbox: Sandbox, provider: ReloadlyProvider
) -> None:
    """…2 holds the first answer (4 s); the repeats are answered at once with PROCESSING."""
    first = asyncio.create_task(provider.send_topup(order(2, "in-flight")))
    await _until(sandbox, "in-flight", lambda stats: stats["sends_by_reference"] == 1)
    assert not first.done()  # recorded and hanging
    repeats = await asyncio.gather(
        *(provider.send_topup(order(2, "in-flight")) for _ in range(19)), return_exceptions=True
    )
    assert all(isinstance(r, ProviderTransaction) for r in repeats), repeats
    assert {r.outcome for r in repeats if isinstance(r, ProviderTransaction)} == {
        Outcome.UNKNOWN
    }
    final = await first
    assert final.outcome is Outcome.DELIVERED  # the held answer shows it settled
    stats = await sandbox.stats("in-flight")
    assert (stats["delivered"], stats["duplicates"], stats["deliveries_by_reference"]) == (1, 19, 1)


async def test_a_repeat_after_an_unknown_outcome_does_not_deliver_again(
    sandbox: Sandbox, hasty: ReloadlyProvider
) -> None:
    for _ in range(3):  # each send times out; none may start a second delivery
        with contextlib.suppress(OutcomeUnknown):
            await hasty.send_topup(order(2, "retry-hang"))
    stats = await _until(sandbox, "retry-hang", lambda stats: stats["pending"] == 0)  # settled
    assert (stats["delivered"], stats["deliveries_by_reference"]) == (1, 1)
    assert stats["sends_by_reference"] == 3
