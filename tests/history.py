"""Generated histories for the back-office tests: a platform, a distributor and its retailers
trading and topping up at chosen times, all through the real services and the real ledger.

The clocks the ledger and the top-ups read are pointed at :class:`Clock` (``monkeypatch``), so a
history lands on past local days; what happened is recorded here, plainly, so a test can compute
every expected sum itself, independently of the SQL under test.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

import core.ledger.generic
import core.ledger.pg_fast
from core.context import Core
from core.models import Party, Topup, TopupState
from core.services import catalog, stock, topups
from tests.helpers import ADMIN, chain

ZONE = "Africa/Nairobi"
PLATFORM = "+254799999999"
# (operator, product or None for airtime, number): Safaricom and Airtel airtime, a bundle.
KINDS = [
    ("safaricom-ke", None, "0712345670"),
    ("safaricom-ke", "safaricom-ke:data-100mb-1d", "0712345678"),
    ("airtel-ke", None, "0733123456"),
]
BUNDLE_PRICE = {"safaricom-ke:data-100mb-1d": 2_000}
# Discounts: the platform grants the distributor 3% on all, the distributor its retailers 2.5% on
# Safaricom and 2% on the rest.
PLATFORM_BPS = 300
RETAIL_BPS = {"safaricom-ke": 250, "*": 200}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def patch_clocks(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> None:
    monkeypatch.setattr(core.ledger.generic, "utcnow", clock)
    monkeypatch.setattr(core.ledger.pg_fast, "utcnow", clock)
    monkeypatch.setattr(topups, "clock", clock)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), ZoneInfo(ZONE)).astimezone(UTC)


@dataclass
class Made:
    """One top-up as the test made it."""

    party_id: int
    operator: str
    product: str
    amount_minor: int
    state: str
    at: datetime
    topup_id: str = ""


@dataclass
class Trade:
    """A sale between levels as the test made it (face, price, of it on credit)."""

    seller_id: int
    buyer_id: int
    operator: str
    face_minor: int
    price_minor: int
    credit_minor: int
    at: datetime


@dataclass
class History:
    platform_id: int
    distributor: Party
    shops: list[Party]
    topups: list[Made] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)
    deposits: list[tuple[int, int, datetime]] = field(default_factory=list)  # (payer, minor, at)
    clawbacks: list[tuple[int, int, str, int, datetime]] = field(default_factory=list)


async def finish(core: Core, topup_id: str, state: TopupState, at: datetime) -> None:
    """Make a top-up final as the worker does: the ledger resolves it, the row says so."""
    async with core.transaction() as session:
        if state == TopupState.DELIVERED:
            await core.ledger.capture(session, reservation_id=topup_id)
        else:
            await core.ledger.release(session, reservation_id=topup_id)
        await session.execute(
            update(Topup).where(Topup.id == topup_id).values(state=state, final_at=at)  # type: ignore[arg-type]
        )


async def build(core: Core, *, retailers: int = 3, tag: str = "") -> History:
    distributor, shops = await chain(core, retailers=retailers, tag=tag)
    platform_id = distributor.parent_id or 0
    await catalog.set_agreement(
        core, actor=ADMIN, seller_id=platform_id, buyer_id=distributor.id or 0,
        discount_bps=PLATFORM_BPS, commission_bps=50,
    )  # fmt: skip
    for shop in shops:
        for operator, bps in RETAIL_BPS.items():
            await catalog.set_agreement(
                core, actor=ADMIN, seller_id=distributor.id or 0, buyer_id=shop.id or 0,
                discount_bps=bps, operator_code=operator, commission_bps=100,
            )  # fmt: skip
        await stock.set_credit_limit(
            core, actor=ADMIN, seller_ref=distributor.msisdn, buyer_ref=shop.msisdn,
            limit_minor=3_000_000,
        )  # fmt: skip
    return History(platform_id, distributor, shops)


async def sell(
    core: Core,
    history: History,
    seller: Party | str,
    buyer: Party,
    op: str,
    face: int,
    at: datetime,
) -> None:
    receipt = await stock.sell(
        core, actor=ADMIN, seller_ref=seller if isinstance(seller, str) else seller.msisdn,
        buyer_ref=buyer.msisdn, operator_code=op, face_minor=face,
    )  # fmt: skip
    seller_id = history.platform_id if isinstance(seller, str) else seller.id or 0
    history.trades.append(
        Trade(seller_id, buyer.id or 0, op, face, receipt.price_minor, receipt.credit_minor, at)
    )


async def _deposit(
    core: Core, history: History, receiver: str, payer: Party, amount: int, at: datetime
) -> None:
    await stock.deposit(
        core, actor=ADMIN, receiver_ref=receiver, payer_ref=payer.msisdn, amount_minor=amount,
        reference=f"dep-{payer.id}-{int(at.timestamp())}-{len(history.deposits)}",
    )  # fmt: skip
    history.deposits.append((payer.id or 0, amount, at))


async def day_of_trade(  # noqa: C901 - a script of one day, read top to bottom
    core: Core, clock: Clock, history: History, day: date, *, seed: int, topups_n: int = 30
) -> None:
    """A day: stock in and down the chain, deposits, credit, top-ups at random hours, some
    delivered, some failed, some left open, one claw-back."""
    rng = random.Random(seed)
    dist = history.distributor
    clock.now = local(day, 6, 5)
    for operator in ("safaricom-ke", "airtel-ke"):
        ref = f"in-{operator}-{day.isoformat()}"
        await stock.intake(core, actor=ADMIN, operator_code=operator, amount_minor=10_000_000,
                           reference=ref)  # fmt: skip
        await _deposit(core, history, PLATFORM, dist, 4_850_000, clock.now)
        await sell(core, history, PLATFORM, dist, operator, 5_000_000, clock.now)
    for n, shop in enumerate(history.shops):
        clock.now = local(day, 7, n)
        await _deposit(core, history, dist.msisdn, shop, rng.choice([200_000, 500_000]), clock.now)
        for operator in ("safaricom-ke", "airtel-ke"):
            # More than the cash: the rest goes on credit.
            await sell(core, history, dist, shop, operator, rng.choice([400_000, 600_000]),
                        clock.now)  # fmt: skip
    for _ in range(topups_n):
        shop = rng.choice(history.shops)
        operator, product, number = rng.choice(KINDS)
        amount = BUNDLE_PRICE[product] if product else rng.randrange(10, 300) * 100
        clock.now = local(day, rng.randrange(8, 22), rng.randrange(60))
        made = await topups.request_topup(
            core, party_id=shop.id or 0, msisdn=number, channel="test", product_code=product,
            amount_minor=None if product else amount, confirm_repeat=True,
        )  # fmt: skip
        fate = rng.random()
        state = TopupState.UNKNOWN if fate > 0.85 else (
            TopupState.FAILED if fate > 0.7 else TopupState.DELIVERED
        )  # fmt: skip
        if state != TopupState.UNKNOWN:
            await finish(core, made.id, state, clock.now)
        else:
            async with core.transaction() as session:
                await session.execute(
                    update(Topup).where(Topup.id == made.id).values(state=state)  # type: ignore[arg-type]
                )
        history.topups.append(
            Made(
                shop.id or 0,
                operator,
                made.product_code,
                made.amount_minor,
                state,
                made.created_at,
                made.id,
            )  # fmt: skip
        )
    clock.now = local(day, 22, 30)
    shop = history.shops[0]
    await stock.clawback(
        core, actor=ADMIN, seller_ref=dist.msisdn, buyer_ref=shop.msisdn,
        operator_code="airtel-ke", amount_minor=1_000, reason="sold by mistake",
    )  # fmt: skip
    history.clawbacks.append((dist.id or 0, shop.id or 0, "airtel-ke", 1_000, clock.now))
    clock.now = local(day, 23, 0)  # a late repayment of part of the credit
    await _deposit(core, history, dist.msisdn, history.shops[-1], 10_000, clock.now)


def on(history: History, day: date) -> tuple[datetime, datetime]:
    since = local(day, 0)
    return since, since + timedelta(days=1)
