"""Reconciliation per aggregator account: each account's report is matched with the top-ups it
holds; a delivery reported by an account that does not hold the top-up is a status mismatch (it
may have reached the phone twice)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from core.services import case_views
from core.services.reconcile import Kind, reconcile_all
from tests.lifecycle.test_cases import Sent
from tests.routing.conftest import Routed


async def test_each_account_is_matched_with_the_topups_it_holds(routed: Routed) -> None:
    first, second = await routed.top_up(), await routed.top_up(msisdn="0712345680")
    topups = await routed.all_final()
    assert [(t.state, t.provider) for t in topups] == [("delivered", "alpha")] * 2
    http = routed.rig.http
    add = {"reference": first, "recipient": "0712345670", "amount": 50}
    async with http.post(f"{routed.urls['beta']}/sandbox/tamper", json={"add": add}) as resp:
        assert resp.status == 200  # beta says it delivered alpha's top-up too
    edit = {"reference": second, "amount": 60}
    async with http.post(f"{routed.urls['alpha']}/sandbox/tamper", json=edit) as resp:
        assert resp.status == 200

    day = datetime.now(ZoneInfo(routed.rig.settings.timezone)).date()
    alpha, beta = await reconcile_all(routed.core, day=day, outbox=Sent())
    assert (alpha.provider, beta.provider) == ("alpha", "beta")
    assert (alpha.ours, alpha.pulled, beta.ours, beta.pulled) == (2, 2, 0, 1)
    assert alpha.classes[Kind.MATCHED].count == 1 and alpha.classes[Kind.AMOUNT].count == 1
    assert beta.classes[Kind.STATUS].count == 1 and beta.classes[Kind.UNKNOWN_TO_US].count == 0
    twice = await case_views.of_topup(routed.core, first)
    assert twice is not None and twice.reason == "recon_status"
    assert twice.evidence["recon"]["ours"]["held_by"] == "alpha"
    assert twice.evidence["recon"]["theirs"]["account"] == "beta"

    again = await reconcile_all(routed.core, day=day, outbox=Sent())
    assert [r.cases_opened for r in again] == [0, 0]
