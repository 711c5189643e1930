"""A settlement's figures for a pair of levels (seller, direct buyer) and a month, from the ledger.

Invariant: the figures depend only on immutable inputs: transfers with ids up to the run's
``through_transfer_id`` and the run's own terms (the discounts and commissions it valued
claw-backs and commissions at), so the same run always computes the same figures.

What is owed runs as an account between the two: the buyer owes the price of the stock it bought
(cash at the sale and credit alike), and is owed back the deposits it handed over and its
commissions (the agreement's ``commission_bps`` of the stock bought). Claw-backs are listed with
their value at the agreed discount but move no money: a refund, where one is owed, is a deposit
entry of its own (docs/DECISIONS.md), which the account then counts.

A period's amount due is the previous run's carried forward (or, for a pair's first run,
everything before the period) plus the period and any late entries: transfers dated in an already
settled period but written after its run, listed as corrections of that run.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from core.models import Account, Party, Transfer
from core.models.catalog import ALL_OPERATORS
from core.money import BPS_PER_UNIT, discounted_price

transfer_t = Transfer.__table__  # type: ignore[attr-defined]
account_t = Account.__table__  # type: ignore[attr-defined]
party_t = Party.__table__  # type: ignore[attr-defined]

PAIR_KINDS = ("sale", "payment", "credit_payment", "deposit", "repayment", "clawback")
Terms = dict[str, tuple[int, int]]  # operator or "*" → (discount bps, commission bps)


def month_bounds(period: str, zone: str) -> tuple[datetime, datetime]:
    """``[first local midnight of the month, first of the next)``; ValueError if not YYYY-MM."""
    first = date.fromisoformat(f"{period}-01")
    if len(period) != 7:
        raise ValueError(period)
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    local = ZoneInfo(zone)
    return datetime.combine(first, time.min, local), datetime.combine(following, time.min, local)


def terms_for(terms: Terms, operator: str) -> tuple[int, int]:
    return terms.get(operator) or terms.get(ALL_OPERATORS) or (0, 0)


def bps_of(amount_minor: int, bps: int) -> int:
    return (amount_minor * bps + BPS_PER_UNIT // 2) // BPS_PER_UNIT


@dataclass
class Flows:
    """What moved between the pair over some transfers, in minor units."""

    sold_face: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # per operator
    clawed_face: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    paid_cash: int = 0  # payment legs: the buyer's cash at the sale
    on_credit: int = 0  # credit_payment legs
    deposits: int = 0  # deposit legs (became cash)
    repaid: int = 0  # repayment legs (repaid credit)

    def add(self, kind: str, asset: str, amount: int) -> None:
        operator = asset.partition(":")[2]
        if kind == "sale":
            self.sold_face[operator] += amount
        elif kind == "clawback":
            self.clawed_face[operator] += amount
        elif kind == "payment":
            self.paid_cash += amount
        elif kind == "credit_payment":
            self.on_credit += amount
        elif kind == "deposit":
            self.deposits += amount
        elif kind == "repayment":
            self.repaid += amount

    @property
    def price(self) -> int:
        return self.paid_cash + self.on_credit

    def clawback_value(self, terms: Terms) -> int:
        return sum(
            discounted_price(face, terms_for(terms, op)[0]) for op, face in self.clawed_face.items()
        )

    def commissions(self, terms: Terms) -> int:
        return sum(bps_of(face, terms_for(terms, op)[1]) for op, face in self.sold_face.items())

    def owed(self, terms: Terms) -> int:
        """What these flows add to the buyer's debt to the seller."""
        return self.price - self.deposits - self.repaid - self.commissions(terms)


@dataclass(frozen=True, slots=True)
class Late:
    """A transfer dated in a settled period but written after that period's run."""

    transfer_id: int
    at: datetime
    kind: str
    asset: str
    amount_minor: int


@dataclass
class PairFlows:
    before: Flows = field(default_factory=Flows)  # everything dated before the period
    period: Flows = field(default_factory=Flows)
    credit_before: int = 0  # credit outstanding at the period's start (on credit − repaid)
    late: list[Late] = field(default_factory=list)


def _pair_of() -> tuple[Any, Any, Any]:
    """(seller, buyer) of a pair transfer: a sale goes seller → buyer, a payment or a claw-back
    buyer → seller, a deposit from the outside to the buyer (whose seller is its parent)."""
    debit, credit, buyer_party = aliased(account_t), aliased(account_t), aliased(party_t)
    kind = transfer_t.c.kind
    seller = case(
        (kind == "sale", debit.c.party_id),
        (kind.in_(["deposit", "repayment"]), buyer_party.c.parent_id),
        else_=credit.c.party_id,
    )
    buyer = case(
        (kind.in_(["payment", "credit_payment", "clawback"]), debit.c.party_id),
        else_=credit.c.party_id,
    )
    joins = (
        transfer_t.join(debit, debit.c.id == transfer_t.c.debit_account_id)
        .join(credit, credit.c.id == transfer_t.c.credit_account_id)
        .join(buyer_party, buyer_party.c.id == buyer)
    )
    return seller, buyer, joins


async def pair_flows(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    through_id: int,
    pairs: dict[tuple[int, int], int],
) -> dict[tuple[int, int], PairFlows]:
    """Flows of each pair ``(seller, buyer) → the id its previous run read up to (0: none)``,
    grouped in SQL by pair, kind, asset and whether dated before the period or in it."""
    seller, buyer, joins = _pair_of()
    bucket = case((transfer_t.c.created_at >= since, literal("period")), else_=literal("before"))
    query = (
        select(
            seller,
            buyer,
            transfer_t.c.kind,
            transfer_t.c.asset,
            bucket,
            func.sum(transfer_t.c.amount_minor),
        )  # fmt: skip
        .select_from(joins)
        .where(
            transfer_t.c.kind.in_(PAIR_KINDS),
            transfer_t.c.created_at < until,
            transfer_t.c.id <= through_id,
        )
        .group_by(seller, buyer, transfer_t.c.kind, transfer_t.c.asset, bucket)
    )
    buyers = sorted({b for _, b in pairs})
    if len(buyers) < 500:
        query = query.where(buyer.in_(buyers))
    found: dict[tuple[int, int], PairFlows] = {pair: PairFlows() for pair in pairs}
    for s, b, kind, asset, where, total in await session.execute(query):
        if (flows := found.get((s, b))) is None:
            continue
        getattr(flows, where).add(kind, asset, int(total))
        if where == "before" and kind in ("credit_payment", "repayment"):
            flows.credit_before += int(total) if kind == "credit_payment" else -int(total)
    await _late(session, found, pairs, since, through_id)
    return found


async def _late(
    session: AsyncSession,
    found: dict[tuple[int, int], PairFlows],
    pairs: dict[tuple[int, int], int],
    since: datetime,
    through_id: int,
) -> None:
    """Transfers dated before the period that a pair's previous run did not read."""
    settled = [p for p in pairs.values() if p]
    if not settled:
        return
    seller, buyer, joins = _pair_of()
    query = (
        select(
            seller,
            buyer,
            transfer_t.c.id,
            transfer_t.c.created_at,
            transfer_t.c.kind,
            transfer_t.c.asset,
            transfer_t.c.amount_minor,
        )  # fmt: skip
        .select_from(joins)
        .where(
            transfer_t.c.kind.in_(PAIR_KINDS),
            and_(transfer_t.c.id > min(settled), transfer_t.c.id <= through_id),
            transfer_t.c.created_at < since,
        )
        .order_by(transfer_t.c.id)
    )
    for s, b, tid, at, kind, asset, amount in await session.execute(query):
        previous = pairs.get((s, b))
        if previous and tid > previous:
            found[(s, b)].late.append(Late(tid, at, kind, asset, int(amount)))
