"""An outcome still unknown after the window: a support case; the stock stays held."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from core.models import Notification, Reservation, SupportCase, TopupState
from sandbox.config import SandboxConfig
from tests.helpers import assert_ledger_ok
from tests.lifecycle.conftest import Rig
from tests.lifecycle.test_paths import STOCK, _shop, _stock, _top_up


@pytest.fixture
def rig_overrides() -> dict[str, Any]:
    return {"topup_unknown_window_s": 2}


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    # …2 never settles within the test: the outcome stays unknown past the window.
    return SandboxConfig(hang_s=3.0, settle_s=3600, slow_ms=1500, seed=7)


async def test_unknown_past_the_window_becomes_a_support_case(rig: Rig) -> None:
    shop = await _shop(rig)
    topup = await rig.wait(
        (await _top_up(rig, shop, 2)).id, states=frozenset({TopupState.ESCALATED})
    )
    assert await _stock(rig, shop) == (STOCK - 5_000, 5_000, 0)  # still held
    async with rig.core.sessions() as session:
        case = (
            await session.execute(select(SupportCase).where(SupportCase.topup_id == topup.id))
        ).scalar_one()
        reservation = await session.get(Reservation, topup.id)
        notes = list((await session.execute(select(Notification))).scalars())
    assert case.reason == "unknown_outcome" and reservation and reservation.status == "reserved"
    assert any("still unconfirmed" in n.text for n in notes)
    await assert_ledger_ok(rig.core)


async def test_a_topup_the_catalog_cannot_route_escalates_at_once(rig: Rig) -> None:
    from core.models import OperatorProvider

    shop = await _shop(rig)
    async with rig.core.transaction() as session:  # an operator with no aggregator id
        refs = await session.get(OperatorProvider, ("safaricom-ke", "reloadly"))
        assert refs is not None
        refs.airtime_ref = None
    topup = await rig.wait(
        (await _top_up(rig, shop, 0)).id, states=frozenset({TopupState.ESCALATED})
    )
    assert topup.sends == 0 and topup.detail and "has no reloadly id for airtime" in topup.detail
    assert (await rig.stats())["requests"] == 0
    assert await _stock(rig, shop) == (STOCK - 5_000, 5_000, 0)  # held for support to decide
    await assert_ledger_ok(rig.core)
