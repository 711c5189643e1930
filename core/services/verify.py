"""``airgate ledger verify``: prove the ledger from the outside.

Recomputes every account's balance from the transfers and checks that

1. each stored balance equals credits minus debits;
2. each asset sums to zero, over stored balances and over recomputed ones;
3. no non-system account is negative;
4. every transfer moves one asset between two accounts of that asset;
5. each party's in-flight balance equals the sum of its open reservations;
6. no party's free credit exceeds the credit limit its parent set.

All sums run in SQL, so it reads the ledger once however large it is.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import aliased

from core.models import Account, AccountKind, Party, Reservation, ReservationStatus, Transfer

account_t = Account.__table__  # type: ignore[attr-defined]
transfer_t = Transfer.__table__  # type: ignore[attr-defined]
reservation_t = Reservation.__table__  # type: ignore[attr-defined]
party_t = Party.__table__  # type: ignore[attr-defined]


@dataclass
class VerifyReport:
    accounts: int = 0
    transfers: int = 0
    assets: dict[str, int] = field(default_factory=dict)  # asset → sum of stored balances
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify(engine: AsyncEngine) -> VerifyReport:
    """Verify from one snapshot: on a live PostgreSQL, separate READ COMMITTED reads could see a
    transfer without its balance change and report a problem that is not there."""
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        async with conn.begin():
            return await verify_ledger(AsyncSession(bind=conn))


async def verify_ledger(session: AsyncSession) -> VerifyReport:
    report = VerifyReport()
    flows = await _flows(session)
    recomputed_by_asset: dict[str, int] = defaultdict(int)
    accounts = await session.execute(
        select(
            account_t.c.id,
            account_t.c.code,
            account_t.c.asset,
            account_t.c.is_system,
            account_t.c.balance_minor,
        )
    )
    for id_, code, asset, is_system, stored in accounts:
        report.accounts += 1
        recomputed = flows.get(id_, 0)
        recomputed_by_asset[asset] += recomputed
        report.assets[asset] = report.assets.get(asset, 0) + stored
        if recomputed != stored:
            report.problems.append(f"{code}: stored {stored}, transfers say {recomputed}")
        if not is_system and stored < 0:
            report.problems.append(f"{code}: negative balance {stored}")
    for asset, total in sorted(report.assets.items()):
        if total or recomputed_by_asset[asset]:
            report.problems.append(f"{asset}: balances sum to {total}, not zero")
    report.transfers = int(
        (await session.execute(select(func.count()).select_from(transfer_t))).scalar() or 0
    )
    report.problems.extend(await _asset_mismatches(session))
    report.problems.extend(await _reservation_mismatches(session))
    report.problems.extend(await _credit_over_limit(session))
    return report


async def _credit_over_limit(session: AsyncSession) -> list[str]:
    rows = await session.execute(
        select(party_t.c.id, party_t.c.credit_limit_minor, func.sum(account_t.c.balance_minor))
        .join(account_t, account_t.c.party_id == party_t.c.id)
        .where(account_t.c.kind == AccountKind.CREDIT)
        .group_by(party_t.c.id, party_t.c.credit_limit_minor)
        .having(func.sum(account_t.c.balance_minor) > party_t.c.credit_limit_minor)
    )
    return [f"party {p}: free credit {free} above its limit {limit}" for p, limit, free in rows]


async def _flows(session: AsyncSession) -> dict[int, int]:
    """Credits minus debits per account, summed by the database."""
    flows: dict[int, int] = defaultdict(int)
    for column, sign in ((transfer_t.c.credit_account_id, 1), (transfer_t.c.debit_account_id, -1)):
        rows = await session.execute(
            select(column, func.sum(transfer_t.c.amount_minor)).group_by(column)
        )
        for account_id, total in rows:
            flows[account_id] += sign * int(total)
    return flows


async def _asset_mismatches(session: AsyncSession) -> list[str]:
    debit, credit = aliased(account_t), aliased(account_t)
    rows = await session.execute(
        select(transfer_t.c.id, transfer_t.c.asset, debit.c.asset, credit.c.asset)
        .join(debit, debit.c.id == transfer_t.c.debit_account_id)
        .join(credit, credit.c.id == transfer_t.c.credit_account_id)
        .where((debit.c.asset != transfer_t.c.asset) | (credit.c.asset != transfer_t.c.asset))
        .limit(20)
    )
    return [f"transfer {t}: asset {a} between {d} and {c}" for t, a, d, c in rows]


async def _reservation_mismatches(session: AsyncSession) -> list[str]:
    open_rows = await session.execute(
        select(
            reservation_t.c.party_id, reservation_t.c.asset, func.sum(reservation_t.c.amount_minor)
        )
        .where(reservation_t.c.status == ReservationStatus.RESERVED)
        .group_by(reservation_t.c.party_id, reservation_t.c.asset)
    )
    held = {(p, a): int(s) for p, a, s in open_rows}
    inflight_rows = await session.execute(
        select(account_t.c.party_id, account_t.c.asset, account_t.c.balance_minor).where(
            account_t.c.kind == AccountKind.INFLIGHT
        )
    )
    inflight = {(p, a): b for p, a, b in inflight_rows}
    return [
        f"party {party} {asset}: in flight {inflight.get(key, 0)}, reserved {held.get(key, 0)}"
        for key in sorted(set(held) | set(inflight))
        for party, asset in [key]
        if held.get(key, 0) != inflight.get(key, 0)
    ]
