"""A local day's figures per party, summed in SQL (GROUP BY), on SQLite and PostgreSQL alike.

Invariant: every figure is a read of immutable rows (transfers) or of top-ups' states at the time
of the report; the day is ``[local midnight, next local midnight)`` in ``AIRGATE_TIMEZONE``, its
hours and the week before it are boundaries computed here with zoneinfo and summed by the database
with ``FILTER`` clauses, so a zone with half-hour offsets or a DST day is still exact.

Top-ups are the party's own (a retailer) or its retailers' (a distributor: its network). Margin
earned: a retailer's delivered top-ups at the discount its distributor grants it; a distributor's
stock sold at the price its buyers paid, less its cost at the discount its own seller grants
(agreements as they stand when the report runs).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from core.context import Core
from core.models import Account, Agreement, Party, Role, Topup, TopupState, Transfer
from core.models.catalog import ALL_OPERATORS
from core.money import BPS_PER_UNIT

party_t = Party.__table__  # type: ignore[attr-defined]
topup_t = Topup.__table__  # type: ignore[attr-defined]
account_t = Account.__table__  # type: ignore[attr-defined]
agreement_t = Agreement.__table__  # type: ignore[attr-defined]
transfer_t = Transfer.__table__  # type: ignore[attr-defined]

DELIVERED, FAILED = TopupState.DELIVERED.value, TopupState.FAILED.value
TRADE_KINDS = ("sale", "payment", "credit_payment", "deposit", "repayment", "clawback")
WEEK_DAYS = 7


def day_bounds(day: date, zone: str) -> tuple[datetime, datetime]:
    local = ZoneInfo(zone)
    return (
        datetime.combine(day, time.min, local),
        datetime.combine(day + timedelta(days=1), time.min, local),
    )


@dataclass(frozen=True, slots=True)
class ProductLine:
    operator: str
    product: str
    delivered: int
    delivered_minor: int
    failed: int
    failed_minor: int
    open: int  # reserved, unknown or escalated: not final yet
    open_minor: int


@dataclass(slots=True)
class PartyDay:
    """One party's day. Money in minor units; top-ups of its network for a distributor."""

    party_id: int
    role: str
    name: str
    msisdn: str
    language: str
    delivered: int = 0
    delivered_minor: int = 0
    failed: int = 0
    open: int = 0
    margin_minor: int = 0
    bought_face_minor: int = 0  # stock bought from its seller
    bought_price_minor: int = 0  # what it paid for it (cash and credit)
    sold_face_minor: int = 0  # stock sold to its buyers
    sold_price_minor: int = 0
    deposits_minor: int = 0  # cash it handed its seller (deposits recorded for it)
    credit_used_minor: int = 0  # of its purchases, paid on credit


@dataclass(frozen=True, slots=True)
class RetailerDay:
    party_id: int
    name: str
    msisdn: str
    delivered: int
    delivered_minor: int
    lowest_stock_minor: int | None  # its smallest stock of an operator, now
    low: bool


@dataclass(slots=True)
class Detail:
    """One party's report: its day, top-ups by product, and the charts' series."""

    day: date
    party: PartyDay
    products: list[ProductLine]
    by_hour: list[int]  # delivered value per local hour (index 0: 00:00-01:00)
    by_operator: dict[str, int]  # delivered value per operator
    week: list[tuple[date, int]]  # delivered value of the 7 days ending with ``day``
    retailers: list[RetailerDay] = field(default_factory=list)  # ranked (distributors)

    @property
    def inactive(self) -> list[RetailerDay]:
        return [r for r in self.retailers if r.delivered == 0]

    @property
    def low_stock(self) -> list[RetailerDay]:
        return [r for r in self.retailers if r.low]


def network_of(party_id: int) -> Any:
    """The parties whose top-ups count for ``party_id``: itself and its direct buyers."""
    return select(party_t.c.id).where(
        or_(party_t.c.id == party_id, party_t.c.parent_id == party_id)
    )


async def everyone(core: Core, *, day: date, party_id: int | None = None) -> list[PartyDay]:
    """Every distributor and retailer (or ``party_id`` and its buyers), by role and name."""
    since, until = day_bounds(day, core.settings.timezone)
    async with core.sessions() as session:
        days = await _parties(session, party_id)
        await _add_topups(session, days, since, until, party_id)
        trade = await _trade(session, since, until, party_id)
        _add_trade(days, trade)
        await _add_margins(session, days, trade, since, until, party_id)
    return sorted(days.values(), key=lambda d: (d.role != Role.DISTRIBUTOR, d.name, d.party_id))


async def _parties(session: AsyncSession, party_id: int | None) -> dict[int, PartyDay]:
    query = select(
        party_t.c.id, party_t.c.role, party_t.c.name, party_t.c.msisdn, party_t.c.language
    ).where(party_t.c.role != Role.PLATFORM)
    if party_id is not None:
        query = query.where(party_t.c.id.in_(network_of(party_id)))
    rows = (await session.execute(query)).all()
    return {row[0]: PartyDay(*row) for row in rows}


def topup_sums() -> list[Any]:
    amount, state = topup_t.c.amount_minor, topup_t.c.state
    return [
        func.count().filter(state == DELIVERED),
        func.coalesce(func.sum(amount).filter(state == DELIVERED), 0),
        func.count().filter(state == FAILED),
        func.coalesce(func.sum(amount).filter(state == FAILED), 0),
        func.count().filter(state.notin_([DELIVERED, FAILED])),
        func.coalesce(func.sum(amount).filter(state.notin_([DELIVERED, FAILED])), 0),
    ]


def within(column: Any, since: datetime, until: datetime) -> Any:
    return and_(column >= since, column < until)


async def _add_topups(
    session: AsyncSession,
    days: dict[int, PartyDay],
    since: datetime,
    until: datetime,
    party_id: int | None,
) -> None:
    """Each party's top-ups, and each distributor's network's (the sums of its buyers)."""
    query = (
        select(topup_t.c.party_id, party_t.c.parent_id, *topup_sums())
        .join(party_t, party_t.c.id == topup_t.c.party_id)
        .where(within(topup_t.c.created_at, since, until))
        .group_by(topup_t.c.party_id, party_t.c.parent_id)
    )
    if party_id is not None:
        query = query.where(topup_t.c.party_id.in_(network_of(party_id)))
    for who, parent, delivered, delivered_minor, failed, _, open_, _ in await session.execute(
        query
    ):
        for owner in (who, parent):
            if (day := days.get(owner)) is not None:
                day.delivered += delivered
                day.delivered_minor += delivered_minor
                day.failed += failed
                day.open += open_


async def _trade(
    session: AsyncSession, since: datetime, until: datetime, party_id: int | None
) -> list[Any]:
    """Trade transfers of the day per (debit party, credit party, kind, asset)."""
    debit, credit = aliased(account_t), aliased(account_t)
    query = (
        select(
            debit.c.party_id,
            credit.c.party_id,
            transfer_t.c.kind,
            transfer_t.c.asset,
            func.sum(transfer_t.c.amount_minor),
        )
        .join(debit, debit.c.id == transfer_t.c.debit_account_id)
        .join(credit, credit.c.id == transfer_t.c.credit_account_id)
        .where(within(transfer_t.c.created_at, since, until), transfer_t.c.kind.in_(TRADE_KINDS))
        .group_by(debit.c.party_id, credit.c.party_id, transfer_t.c.kind, transfer_t.c.asset)
    )
    if party_id is not None:
        network = network_of(party_id)
        query = query.where(or_(debit.c.party_id.in_(network), credit.c.party_id.in_(network)))
    return list((await session.execute(query)).all())


def _add_trade(days: dict[int, PartyDay], trade: list[Any]) -> None:
    for payer, payee, kind, _asset, total in trade:
        buyer, seller = days.get(payee), days.get(payer)  # sale: seller → buyer
        if kind == "sale":
            if buyer:
                buyer.bought_face_minor += total
            if seller:
                seller.sold_face_minor += total
        elif kind in ("payment", "credit_payment"):  # buyer → seller
            if seller:  # the payer
                seller.bought_price_minor += total
                if kind == "credit_payment":
                    seller.credit_used_minor += total
            if buyer:
                buyer.sold_price_minor += total
        elif kind in ("deposit", "repayment") and buyer:
            buyer.deposits_minor += total


async def agreements(session: AsyncSession, buyers: list[int]) -> dict[tuple[int, str], int]:
    """(buyer, operator or ``*``) → discount bps its seller grants it."""
    if not buyers:
        return {}
    query = (
        select(agreement_t.c.buyer_id, agreement_t.c.operator_code, agreement_t.c.discount_bps)
        .join(party_t, party_t.c.id == agreement_t.c.buyer_id)
        .where(agreement_t.c.seller_id == party_t.c.parent_id)
    )
    if len(buyers) < 500:
        query = query.where(agreement_t.c.buyer_id.in_(buyers))
    return {(b, op): bps for b, op, bps in await session.execute(query)}


def discount_of(terms: dict[tuple[int, str], int], buyer: int, operator: str) -> int:
    return terms.get((buyer, operator), terms.get((buyer, ALL_OPERATORS), 0))


def _bps_of(amount_minor: int, bps: int) -> int:
    """``amount × bps / 10000``, rounded half up (as prices are)."""
    return (amount_minor * bps + BPS_PER_UNIT // 2) // BPS_PER_UNIT


async def _add_margins(
    session: AsyncSession,
    days: dict[int, PartyDay],
    trade: list[Any],
    since: datetime,
    until: datetime,
    party_id: int | None,
) -> None:
    """Margins from sums per (party, operator): delivered top-ups and stock sold."""
    terms = await agreements(session, list(days))
    delivered = (
        select(topup_t.c.party_id, topup_t.c.operator_code, func.sum(topup_t.c.amount_minor))
        .where(within(topup_t.c.created_at, since, until), topup_t.c.state == DELIVERED)
        .group_by(topup_t.c.party_id, topup_t.c.operator_code)
    )
    if party_id is not None:
        delivered = delivered.where(topup_t.c.party_id.in_(network_of(party_id)))
    for who, operator, total in await session.execute(delivered):
        if (day := days.get(who)) is not None:
            day.margin_minor += _bps_of(int(total), discount_of(terms, who, operator))
    # A seller's cost of what it sold: face at its own discount (price received is in sold_price).
    cost: dict[int, int] = defaultdict(int)
    for payer, _payee, kind, asset, total in trade:
        if kind == "sale" and (seller := days.get(payer)) is not None:
            operator = asset.partition(":")[2]
            bps = discount_of(terms, payer, operator)
            cost[seller.party_id] += total - _bps_of(total, bps)
    for seller_id, spent in cost.items():
        days[seller_id].margin_minor += days[seller_id].sold_price_minor - spent
