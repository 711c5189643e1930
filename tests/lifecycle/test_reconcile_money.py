"""Reconciliation's money line: the aggregator's charges (the sandbox's ``balanceInfo.cost``)
against our delivered top-ups at the account's price, and the credits its balance chain shows
beside our stock intake of the day."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from core.services import recon_money
from core.services.reconcile import Kind, reconcile
from tests.lifecycle.conftest import Rig
from tests.lifecycle.test_cases import Sent, _tamper
from tests.lifecycle.test_paths import STOCK, _shop, _top_up


@pytest.fixture
def sandbox_config() -> Any:
    from tests.lifecycle.test_cases import SandboxConfig

    # It charges the face value: what an account at price_bps 10,000 (the default) expects.
    return SandboxConfig(hang_s=3.0, settle_s=3600, slow_ms=1500, seed=7, discount_bps=0)


async def _day(rig: Rig, amounts: list[int]) -> list[str]:
    shop = await _shop(rig)
    made = [await _top_up(rig, shop, 0, amount_minor=a) for a in amounts]
    await asyncio.gather(*(rig.wait(t.id) for t in made))
    return [t.id for t in made]


def _today(rig: Rig) -> Any:
    return datetime.now(ZoneInfo(rig.settings.timezone)).date()


async def test_charges_agree_and_a_credit_shows_in_the_balance_chain(rig: Rig) -> None:
    shop = await _shop(rig)
    first = await _top_up(rig, shop, 0, amount_minor=1_000)
    await rig.wait(first.id)
    await _tamper(rig, credit=25)  # KES 25 put into the account between the two
    second = await _top_up(rig, shop, 0, amount_minor=2_100)
    await rig.wait(second.id)

    report = await reconcile(rig.core, rig.core.provider, day=_today(rig), outbox=Sent())
    money = report.money
    assert report.classes[Kind.MATCHED].count == 2
    assert (money.charged_minor, money.charged_rows, money.uncharged_rows) == (3_100, 2, 0)
    assert (money.priced_minor, money.delivered, money.price_bps) == (3_100, 2, 10_000)
    assert money.difference_minor == money.at_stake_minor == 0
    assert (money.credits_minor, money.debits_minor) == (2_500, 0)
    assert money.intake_minor == STOCK  # the test's one intake today
    assert report.as_json()["money_at_stake_minor"] == 0

    # The same top-ups at a 2 % discount: priced per top-up.
    at_discount = recon_money.Money()
    await recon_money.ours(
        rig.core,
        at_discount,
        held=report.held(),
        start=report.start,
        end=report.end,
        price_bps=9_800,
    )
    assert at_discount.priced_minor == 980 + 2_058


async def test_a_charge_above_our_price_is_reported_with_the_money_at_stake(rig: Rig) -> None:
    matched, overcharged = await _day(rig, [1_000, 1_500])
    await _tamper(rig, reference=overcharged, cost=18)  # KES 18 for a KES 15 top-up

    report = await reconcile(rig.core, rig.core.provider, day=_today(rig), outbox=Sent())
    money = report.money
    assert report.classes[Kind.MATCHED].count == 2  # face values agree: only the charge differs
    assert (money.charged_minor, money.priced_minor) == (2_800, 2_500)
    assert money.difference_minor == money.at_stake_minor == 300
    assert money.credits_minor == 0  # the chain itself is unbroken
    body = report.as_json()
    assert body["money"]["at_stake_minor"] == body["money_at_stake_minor"] == 300
    assert body["at_stake_minor"] == 0  # the classes' total is not double counted
