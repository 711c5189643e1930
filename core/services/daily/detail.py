"""One party's daily report: :func:`~core.services.daily.figures.everyone`'s figures for it, its
top-ups by product, the charts' series (by local hour, by operator, the week) and, for a
distributor, its retailers ranked by what they delivered, the inactive and those low on stock."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Core
from core.errors import NotFound
from core.models import AccountKind, Role
from core.services.daily.figures import (
    DELIVERED,
    WEEK_DAYS,
    Detail,
    ProductLine,
    RetailerDay,
    account_t,
    day_bounds,
    everyone,
    network_of,
    party_t,
    topup_sums,
    topup_t,
    within,
)

HOUR = timedelta(hours=1)


async def detail(core: Core, *, day: date, party_id: int) -> Detail:
    found = [d for d in await everyone(core, day=day, party_id=party_id) if d.party_id == party_id]
    if not found:
        raise NotFound(kind="party", key=f"#{party_id}")
    zone = core.settings.timezone
    since, until = day_bounds(day, zone)
    network = network_of(party_id)
    async with core.sessions() as session:
        products = await _products(session, network, since, until)
        hours = await _delivered_between(session, network, _hours(since, until))
        week_days = [day - timedelta(days=n) for n in range(WEEK_DAYS - 1, -1, -1)]
        week_edges = [day_bounds(d, zone)[0] for d in week_days] + [until]
        week = await _delivered_between(session, network, week_edges)
        retailers = (
            await _retailers(core, session, party_id, since, until)
            if found[0].role == Role.DISTRIBUTOR
            else []
        )
    by_operator: dict[str, int] = {}
    for line in products:
        by_operator[line.operator] = by_operator.get(line.operator, 0) + line.delivered_minor
    return Detail(
        day=day,
        party=found[0],
        products=products,
        by_hour=hours,
        by_operator=by_operator,
        week=list(zip(week_days, week, strict=True)),
        retailers=retailers,
    )


def _hours(since: datetime, until: datetime) -> list[datetime]:
    """The day's hour boundaries: 25 of them, or 24 or 26 on a day a clock changes."""
    count = round((until - since) / HOUR)
    return [since + n * HOUR for n in range(count)] + [until]


async def _products(
    session: AsyncSession, network: Any, since: datetime, until: datetime
) -> list[ProductLine]:
    query = (
        select(topup_t.c.operator_code, topup_t.c.product_code, *topup_sums())
        .where(within(topup_t.c.created_at, since, until), topup_t.c.party_id.in_(network))
        .group_by(topup_t.c.operator_code, topup_t.c.product_code)
        .order_by(topup_t.c.operator_code, topup_t.c.product_code)
    )
    return [ProductLine(*row) for row in await session.execute(query)]


async def _delivered_between(
    session: AsyncSession, network: Any, edges: list[datetime]
) -> list[int]:
    """Delivered value between each pair of consecutive ``edges``: one row, one FILTER each."""
    amount, at = topup_t.c.amount_minor, topup_t.c.created_at
    columns = [
        func.coalesce(func.sum(amount).filter(at >= start, at < end), 0)
        for start, end in zip(edges, edges[1:], strict=False)
    ]
    query = select(*columns).where(
        within(at, edges[0], edges[-1]),
        topup_t.c.state == DELIVERED,
        topup_t.c.party_id.in_(network),
    )
    return [int(value) for value in (await session.execute(query)).one()]


async def _retailers(
    core: Core, session: AsyncSession, distributor_id: int, since: datetime, until: datetime
) -> list[RetailerDay]:
    """The distributor's buyers with the day's deliveries and their lowest stock, ranked."""
    sales = (
        select(
            topup_t.c.party_id,
            func.count().label("n"),
            func.sum(topup_t.c.amount_minor).label("total"),
        )
        .where(within(topup_t.c.created_at, since, until), topup_t.c.state == DELIVERED)
        .group_by(topup_t.c.party_id)
        .subquery()
    )
    stock = (
        select(account_t.c.party_id, func.min(account_t.c.balance_minor).label("lowest"))
        .where(account_t.c.kind == AccountKind.MAIN, account_t.c.asset.like("AIRTIME:%"))
        .group_by(account_t.c.party_id)
        .subquery()
    )
    total = func.coalesce(sales.c.total, 0)
    query = (
        select(
            party_t.c.id,
            party_t.c.name,
            party_t.c.msisdn,
            func.coalesce(sales.c.n, 0),
            total,
            stock.c.lowest,
            party_t.c.low_stock_minor,
        )
        .outerjoin(sales, sales.c.party_id == party_t.c.id)
        .outerjoin(stock, stock.c.party_id == party_t.c.id)
        .where(party_t.c.parent_id == distributor_id)
        .order_by(total.desc(), party_t.c.name, party_t.c.id)
    )
    default = core.settings.low_stock_minor
    return [
        RetailerDay(
            pid,
            name,
            msisdn,
            int(n),
            int(value),
            lowest,
            lowest is not None and lowest < (default if own is None else own),
        )
        for pid, name, msisdn, n, value, lowest, own in await session.execute(query)
    ]
