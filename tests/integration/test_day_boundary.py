"""The daily limit's day is the local day of ``AIRGATE_TIMEZONE``: top-ups at 23:59 and 00:01 local
fall on different days even where UTC has one day for both (Nairobi is UTC+3)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.context import Core
from core.errors import LimitExceeded
from core.models import Party
from core.services import topups
from core.services.topups import request_topup
from core.settings import Settings
from tests.helpers import assert_ledger_ok, chain, give_retailer_stock

CUSTOMER = "0712345670"
# 23:59 and 00:01 in Nairobi; 20:59 and 21:01 UTC, one UTC day.
BEFORE_MIDNIGHT = datetime(2026, 3, 10, 20, 59, tzinfo=UTC)
JUST_BEFORE = datetime(2026, 3, 10, 20, 59, 30, tzinfo=UTC)
AFTER_MIDNIGHT = datetime(2026, 3, 10, 21, 1, tzinfo=UTC)


@pytest.fixture
def zone() -> str:
    return "Africa/Nairobi"  # the default AIRGATE_TIMEZONE


@pytest.fixture
def settings(settings: Settings, zone: str) -> Settings:
    return settings.model_copy(update={"timezone": zone})


async def _shop_with_limit(core: Core, limit_minor: int) -> int:
    distributor, [shop] = await chain(core)
    await give_retailer_stock(core, distributor, shop, 100_000, "r1")
    async with core.transaction() as session:
        party = await session.get(Party, shop.id)
        assert party is not None
        party.daily_limit_minor = limit_minor
    return shop.id or 0


async def _at(
    monkeypatch: pytest.MonkeyPatch, when: datetime, core: Core, shop: int, amount: int
) -> topups.Topup:
    monkeypatch.setattr(topups, "clock", lambda: when)
    return await request_topup(
        core, party_id=shop, msisdn=CUSTOMER, amount_minor=amount, channel="test"
    )


async def test_the_limit_starts_again_at_local_midnight(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert core.settings.timezone == "Africa/Nairobi"
    shop = await _shop_with_limit(core, 10_000)
    first = await _at(monkeypatch, BEFORE_MIDNIGHT, core, shop, 8_000)
    assert first.created_at == BEFORE_MIDNIGHT
    with pytest.raises(LimitExceeded) as refused:  # the same local day: 8,000 + 3,000 > 10,000
        await _at(monkeypatch, JUST_BEFORE, core, shop, 3_000)
    assert refused.value.available_minor == 2_000
    # Two minutes later it is the next local day (the same UTC day): the limit is whole again.
    after = await _at(monkeypatch, AFTER_MIDNIGHT, core, shop, 9_000)
    assert after.amount_minor == 9_000
    await assert_ledger_ok(core)


@pytest.mark.parametrize("zone", ["UTC"])
async def test_in_utc_the_same_two_minutes_are_one_day(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: with AIRGATE_TIMEZONE=UTC, 20:59 and 21:01 UTC share a day and a limit."""
    shop = await _shop_with_limit(core, 10_000)
    await _at(monkeypatch, BEFORE_MIDNIGHT, core, shop, 8_000)
    with pytest.raises(LimitExceeded):
        await _at(monkeypatch, AFTER_MIDNIGHT, core, shop, 9_000)
