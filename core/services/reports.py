"""What a distributor sees of its retailers: positions, activity, and today's sales.

Reads only. "Today" is the local day in ``AIRGATE_TIMEZONE``, as for the daily limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select

from core.context import Core
from core.models import Account, AccountKind, Party, Topup, TopupState
from core.models.types import utcnow
from core.services.topups import day_start

party_t = Party.__table__  # type: ignore[attr-defined]
account_t = Account.__table__  # type: ignore[attr-defined]
topup_t = Topup.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class RetailerRow:
    party_id: int
    name: str
    msisdn: str
    status: str
    pin_locked: bool
    stock_minor: int  # available stock, all operators (face value)
    lowest_minor: int | None  # the smallest stock of an operator it carries
    last_topup_at: datetime | None
    own_threshold_minor: int | None = None  # its own low-stock threshold (Party.low_stock_minor)

    def low(self, threshold_minor: int) -> bool:
        """Below its own threshold, else ``threshold_minor`` (the default; core/services/alerts)."""
        limit = threshold_minor if self.own_threshold_minor is None else self.own_threshold_minor
        return self.lowest_minor is not None and self.lowest_minor < limit


async def retailers_of(
    core: Core, *, distributor_id: int, limit: int = 200, offset: int = 0
) -> list[RetailerRow]:
    """A distributor's retailers by name, with their stock and last top-up (one query)."""
    stock = (
        select(
            account_t.c.party_id,
            func.sum(account_t.c.balance_minor).label("total"),
            func.min(account_t.c.balance_minor).label("lowest"),
        )
        .where(account_t.c.kind == AccountKind.MAIN, account_t.c.asset.like("AIRTIME:%"))
        .group_by(account_t.c.party_id)
        .subquery()
    )
    last = (
        select(topup_t.c.party_id, func.max(topup_t.c.created_at).label("at"))
        .group_by(topup_t.c.party_id)
        .subquery()
    )
    query = (
        select(
            party_t.c.id,
            party_t.c.name,
            party_t.c.msisdn,
            party_t.c.status,
            party_t.c.pin_locked,
            func.coalesce(stock.c.total, 0),
            stock.c.lowest,
            last.c.at,
            party_t.c.low_stock_minor,
        )
        .outerjoin(stock, stock.c.party_id == party_t.c.id)
        .outerjoin(last, last.c.party_id == party_t.c.id)
        .where(party_t.c.parent_id == distributor_id)
        .order_by(party_t.c.name, party_t.c.id)
        .limit(limit)
        .offset(offset)
    )
    async with core.sessions() as session:
        rows = (await session.execute(query)).all()
    return [RetailerRow(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class Sales:
    topups: int
    topup_minor: int  # delivered top-ups of the distributor's retailers today
    open_topups: int  # still reserved or unknown


async def today_sales(core: Core, *, distributor_id: int) -> Sales:
    since = day_start(utcnow(), core.settings.timezone)
    delivered = topup_t.c.state == TopupState.DELIVERED
    query = (
        select(
            func.count().filter(delivered),
            func.coalesce(func.sum(topup_t.c.amount_minor).filter(delivered), 0),
            func.count().filter(topup_t.c.state.in_([TopupState.RESERVED, TopupState.UNKNOWN])),
        )
        .select_from(topup_t.join(party_t, party_t.c.id == topup_t.c.party_id))
        .where(and_(party_t.c.parent_id == distributor_id, topup_t.c.created_at >= since))
    )
    async with core.sessions() as session:
        count, amount, pending = (await session.execute(query)).one()
    return Sales(topups=int(count), topup_minor=int(amount), open_topups=int(pending))
