"""Routing across two adapters: account "alpha" is DT One (the sandbox's DT One face), "beta"
Reloadly. DT One going away half-way (its port refusing connections: the adapter's NotSent) moves
the rest to Reloadly under the same references; a DT One unknown (SUBMITTED) stays at DT One until
it resolves; nothing is delivered twice, both faces' records compared with ours."""

from __future__ import annotations

from typing import Any

import pytest

from core.models import TopupState
from tests.helpers import assert_ledger_ok
from tests.routing.conftest import Routed


@pytest.fixture
def account_extra() -> dict[str, dict[str, Any]]:
    return {"alpha": {"adapter": "dtone", "url_path": "/v1"}}


@pytest.fixture
def routing_overrides() -> dict[str, object]:
    return {"dtone_settle_s": 0.3}


async def _dtone(routed: Routed, reference: str | None = None) -> dict[str, Any]:
    params = {"reference": reference} if reference else {}
    url = f"{routed.urls['alpha']}/sandbox/dtone/stats"
    async with routed.rig.http.get(url, params=params) as resp:
        body: dict[str, Any] = await resp.json()
        return body


async def test_dtone_down_half_way_flows_through_reloadly_once_each(routed: Routed) -> None:
    before = [await routed.top_up() for _ in range(2)]
    unknown = await routed.top_up(msisdn="0712345672")  # SUBMITTED, then COMPLETED
    first = await routed.all_final()
    assert {(t.provider, t.state) for t in first} == {("alpha", TopupState.DELIVERED)}
    assert (await routed.stats("beta"))["requests"] == 0
    held_at_dtone = {ref: await _dtone(routed, ref) for ref in [*before, unknown]}
    assert all(s["deliveries_by_reference"] == 1 for s in held_at_dtone.values())
    assert held_at_dtone[unknown]["sends_by_reference"] == 1  # resolved by lookups, at DT One
    totals = await _dtone(routed)
    await routed.stop("alpha")

    after = [await routed.top_up() for _ in range(3)]
    topups = {t.id: t for t in await routed.all_final()}
    for ref in after:
        topup = topups[ref]
        assert (topup.state, topup.provider) == (TopupState.DELIVERED, "beta")
        assert topup.providers_tried == "alpha:not_sent"
        stats = await routed.stats("beta", ref)
        assert (stats["sends_by_reference"], stats["deliveries_by_reference"]) == (1, 1)
    delivered_at = {ref: topups[ref].provider for ref in topups}
    assert totals["delivered"] == sum(p == "alpha" for p in delivered_at.values()) == 3
    assert (await routed.stats("beta"))["delivered"] == 3
    assert totals["double_deliveries"] == (await routed.stats("beta"))["double_deliveries"] == 0
    await assert_ledger_ok(routed.core)
