"""Each failure mode of the first account (down, declining, slow, unknowns) with routing on:
top-ups keep flowing through the other, none is delivered twice (both sandboxes' records
compared with ours), the ledger verifies, and an unknown never goes elsewhere."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from core.errors import NotFound
from core.models import Topup, TopupState
from core.providers.port import Outcome, TopupOrder
from core.routing import health
from core.routing.health import Health, Result
from tests.lifecycle.conftest import SANDBOX
from tests.routing.conftest import Routed

FAILURES_TO_OPEN = 3


@pytest.fixture
def routing_overrides() -> dict[str, object]:
    return {"route_failures_to_open": FAILURES_TO_OPEN, "route_open_s": 60.0}


async def _breaker(routed: Routed, account: str) -> str:
    raw = await routed.rig.queue.redis.hget(health.key(account, "safaricom-ke"), "state")
    return raw.decode() if raw else "closed"


async def test_healthy_alpha_takes_everything(routed: Routed) -> None:
    for _ in range(4):
        await routed.top_up()
    topups = await routed.all_final()
    assert [(t.state, t.provider, t.providers_tried) for t in topups] == [
        (TopupState.DELIVERED, "alpha", None)
    ] * 4
    assert (await routed.stats("beta"))["requests"] == 0
    await routed.assert_delivered_once()


async def test_alpha_down_half_way_flows_through_beta(routed: Routed) -> None:
    for _ in range(3):
        await routed.top_up()
    first = await routed.all_final()
    assert {t.provider for t in first} == {"alpha"}
    await routed.stop("alpha")
    for _ in range(FAILURES_TO_OPEN):  # one at a time: each finds alpha's breaker closed
        topup = await routed.final(await routed.top_up())
        assert (topup.provider, topup.providers_tried) == ("beta", "alpha:not_sent")
    assert await _breaker(routed, "alpha") == "open"
    for _ in range(3):  # alpha's breaker open: straight to beta, alpha not even tried
        await routed.top_up()
    topups = await routed.all_final()
    assert all(t.state == TopupState.DELIVERED for t in topups)
    assert [(t.provider, t.providers_tried) for t in topups[-3:]] == [("beta", None)] * 3
    await routed.assert_delivered_once()


@pytest.mark.parametrize(
    "sandboxes", [{"alpha": dataclasses.replace(SANDBOX, decline_rate=1.0), "beta": SANDBOX}]
)
async def test_alpha_declining_everything_each_goes_to_beta_once(routed: Routed) -> None:
    for _ in range(5):
        await routed.top_up()
    topups = await routed.all_final()
    assert all(t.state == TopupState.DELIVERED and t.provider == "beta" for t in topups)
    assert {t.providers_tried for t in topups} == {"alpha:refused"}
    assert (await routed.stats("alpha"))["failed"] == 5
    assert await _breaker(routed, "alpha") == "closed"  # a decline is the aggregator working
    await routed.assert_delivered_once()


async def test_declined_by_both_fails_once_and_releases(routed: Routed) -> None:
    topup = await routed.final(await routed.top_up(msisdn="0712345671"))  # …1: declined
    assert topup.state == TopupState.FAILED and topup.provider is None
    assert topup.providers_tried == "alpha:refused,beta:refused"
    await routed.assert_delivered_once()


@pytest.mark.parametrize(
    ("sandboxes", "routing_overrides"),
    [
        (
            {"alpha": dataclasses.replace(SANDBOX, latency_ms=400), "beta": SANDBOX},
            {"route_failures_to_open": FAILURES_TO_OPEN, "route_open_s": 60.0,
             "route_slow_ms": 200},
        )
    ],
)  # fmt: skip
async def test_alpha_slow_opens_its_breaker_and_beta_takes_over(routed: Routed) -> None:
    for _ in range(FAILURES_TO_OPEN):
        await routed.final(await routed.top_up())  # one at a time: each slow answer counted
    assert await _breaker(routed, "alpha") == "open"
    for _ in range(3):
        await routed.top_up()
    topups = await routed.all_final()
    assert all(t.state == TopupState.DELIVERED for t in topups)
    assert [t.provider for t in topups] == ["alpha"] * FAILURES_TO_OPEN + ["beta"] * 3
    await routed.assert_delivered_once()


async def test_an_unknown_stays_with_alpha_until_alpha_resolves_it(routed: Routed) -> None:
    delivered = await routed.top_up(msisdn="0712345672")  # …2: time-out, then delivered
    refunded = await routed.top_up(msisdn="0712345673")  # …3: time-out, then refunded
    unknown = await routed.rig.wait(delivered, states=frozenset({TopupState.UNKNOWN}))
    assert unknown.provider == "alpha"
    topup = await routed.final(delivered)
    assert (topup.state, topup.provider) == (TopupState.DELIVERED, "alpha")
    assert topup.checks >= 1
    assert (await routed.stats("beta", delivered))["sends_by_reference"] == 0
    # Refunded at alpha is alpha's definite "failed": only then may beta be tried (…3 there too).
    failed = await routed.final(refunded, timeout_s=60)
    assert failed.state == TopupState.FAILED
    assert (failed.providers_tried or "").startswith("alpha:failed")
    await routed.assert_delivered_once()


@pytest.mark.parametrize(
    "sandboxes",
    [{"alpha": dataclasses.replace(SANDBOX, latency_ms=3_000, hang_s=3.0), "beta": SANDBOX}],
)
async def test_alpha_timing_out_every_send_keeps_each_there_and_sends_the_rest_to_beta(
    routed: Routed,
) -> None:
    """alpha applies every top-up but answers after the client gave up: each is unknown at
    alpha, resolved there by status queries, never sent to beta; once alpha's breaker opens,
    the next ones go to beta."""
    for _ in range(FAILURES_TO_OPEN):
        await routed.top_up()
    await asyncio.sleep(0)
    held = [await routed.rig.wait(t, states=frozenset({TopupState.UNKNOWN})) for t in routed.sent]
    assert {t.provider for t in held} == {"alpha"}
    assert await _breaker(routed, "alpha") == "open"
    for _ in range(3):
        await routed.top_up()
    topups = await routed.all_final()
    assert all(t.state == TopupState.DELIVERED for t in topups)
    assert [t.provider for t in topups] == ["alpha"] * FAILURES_TO_OPEN + ["beta"] * 3
    for topup in topups[:FAILURES_TO_OPEN]:
        assert (await routed.stats("beta", topup.id))["sends_by_reference"] == 0
    await routed.assert_delivered_once()


async def test_a_look_up_outside_the_worker_asks_the_account_holding_it(routed: Routed) -> None:
    """What a support case asks (core/services/cases.py ``ask``): the holder, never another."""
    topup = await routed.final(await routed.top_up())
    assert topup.provider == "alpha"
    holder = routed.core.provider_of(topup.provider)
    found = await holder.find(reference=topup.id, since=topup.created_at)
    assert found is not None and found.outcome is Outcome.DELIVERED
    assert (
        await routed.core.provider_of("beta").find(reference=topup.id, since=topup.created_at)
        is None
    )
    assert routed.core.provider_of(None) is routed.core.providers["alpha"]  # a row of before
    with pytest.raises(NotFound):
        routed.core.provider_of("gamma")


@pytest.mark.parametrize(
    ("worker_at_start", "routing_overrides"),
    [(False, {"route_failures_to_open": FAILURES_TO_OPEN, "sweeper_stale_s": 1})],
)
async def test_a_worker_dying_mid_send_leaves_the_top_up_with_the_account_it_was_sent_to(
    routed: Routed,
) -> None:
    """As a worker leaves it when killed between recording the account and hearing the answer:
    the row names beta (written before the send), beta has the transaction, the job is gone. The
    next worker (the sweeper's job) asks beta, finds it, and never sends it to alpha."""
    topup_id = await routed.top_up()
    await routed.rig.queue.redis.flushdb()  # the job died with its worker
    holder = routed.core.provider_of("beta")
    async with routed.core.sessions() as session:
        topup = await session.get(Topup, topup_id)
        assert topup is not None
        order = TopupOrder(
            reference=topup.id, msisdn=topup.msisdn, country="KE", operator=topup.operator_code,
            operator_ref="1", amount_minor=topup.amount_minor, currency=topup.currency,
        )  # fmt: skip
        topup.provider = "beta"  # what _hold wrote before the request left
        await session.commit()
    sent = await holder.send_topup(order)
    assert sent.outcome is Outcome.DELIVERED
    routed.start_worker()
    final = await routed.final(topup_id)
    assert (final.state, final.provider) == (TopupState.DELIVERED, "beta")
    assert (await routed.stats("alpha", topup_id))["sends_by_reference"] == 0
    assert (await routed.stats("beta", topup_id))["sends_by_reference"] == 1
    await routed.assert_delivered_once()


@pytest.mark.parametrize(
    ("account_extra", "routing_overrides"),
    [({"beta": {"price_bps": 9_700}}, {"route_prefer_cheapest": True})],
)
async def test_the_cheapest_healthy_account_first_when_so_set(routed: Routed) -> None:
    for _ in range(3):
        await routed.top_up()
    topups = await routed.all_final()
    assert [t.provider for t in topups] == ["beta"] * 3  # 97 % of face value beats alpha's 100 %
    await routed.stop("beta")
    topup = await routed.final(await routed.top_up())
    assert (topup.provider, topup.providers_tried) == ("alpha", "beta:not_sent")
    await routed.assert_delivered_once()


@pytest.mark.parametrize(
    "routing_overrides",
    [{"route_failures_to_open": 1, "route_open_s": 1.5, "sweeper_stale_s": 3600}],
)
async def test_with_every_breaker_open_a_top_up_waits_then_goes_at_the_probe(
    routed: Routed,
) -> None:
    """Nothing is sent while both breakers are open; each wait is a step of its own (its own
    job, no sweeper needed), and the first probe once one half-opens takes the top-up."""
    redis = routed.rig.queue.redis
    h = Health.from_settings(routed.rig.settings, redis)
    for account in ("alpha", "beta"):
        await h.record(account=account, operator="safaricom-ke", result=Result.ERROR, latency_ms=1)
    assert await _breaker(routed, "alpha") == await _breaker(routed, "beta") == "open"
    topup_id = await routed.top_up()
    waiting = await routed.rig.wait(topup_id, states=frozenset({TopupState.RESERVED}))
    assert waiting.sends == 0
    topup = await routed.final(topup_id, timeout_s=20)
    assert (topup.state, topup.provider, topup.sends) == (TopupState.DELIVERED, "alpha", 1)
    assert topup.checks >= 1  # the waits
    await routed.assert_delivered_once()


async def test_two_workers_share_the_breaker_and_deliver_each_once(routed: Routed) -> None:
    """Two workers (as two `airgate worker` processes would), top-ups arriving all along, alpha
    gone half-way: one breaker for both (alpha is tried by only some of the top-ups after it
    went), every top-up delivered exactly once, the ledger verifies."""
    routed.start_worker()  # the second
    for _ in range(10):
        await routed.top_up()
    await routed.all_final()
    await routed.stop("alpha")
    for _ in range(20):
        await routed.top_up()
        await asyncio.sleep(0.02)
    topups = await routed.all_final()
    assert all(t.state == TopupState.DELIVERED for t in topups)
    moved = [t for t in topups[10:] if t.providers_tried == "alpha:not_sent"]
    # Sends already in flight count too, so a few more than FAILURES_TO_OPEN may try alpha, but
    # once the one breaker is open neither worker does.
    assert FAILURES_TO_OPEN <= len(moved) < 20
    assert await _breaker(routed, "alpha") == "open"
    await routed.assert_delivered_once()
