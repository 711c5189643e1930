"""A party's movements: what a mini statement shows, and a statement between two local days.

A movement is one transfer into or out of one of the party's MAIN accounts (its stock of an
operator, its cash), signed from the party's side: a top-up's reservation is ``-``, its refund
``+``. The ledger's transfers are immutable, so the statement is a read of them, never a copy.

A statement document (:func:`for_days`, :func:`as_csv`) carries each movement's running balance of
its asset: the balance before the first day (summed in SQL) plus the movements in ledger order.
The Telegram ``/statement`` and ``airgate statement`` both build it here, so their figures agree.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, or_, select, true

from core.context import Core
from core.errors import Refused
from core.models import Account, AccountKind, Transfer
from core.money import format_minor

account_t = Account.__table__  # type: ignore[attr-defined]
transfer_t = Transfer.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Movement:
    at: datetime
    kind: str  # the transfer's kind: reserve, release, sale, payment, deposit …
    asset: str  # AIRTIME:{operator} or CASH:{currency}
    amount_minor: int  # signed: + into the party's account, - out of it
    reference: str | None


MAX_ROWS = 100_000  # a year of a busy kiosk's top-ups, and what one CSV document should carry


async def recent(core: Core, *, party_id: int, limit: int = 5) -> list[Movement]:
    return await _movements(core, party_id=party_id, limit=limit)


async def between(core: Core, *, party_id: int, since: datetime, until: datetime) -> list[Movement]:
    """Every movement in ``[since, until)``, newest first (at most MAX_ROWS)."""
    return await _movements(core, party_id=party_id, limit=MAX_ROWS, since=since, until=until)


@dataclass(frozen=True, slots=True)
class Line:
    move: Movement
    balance_minor: int  # the asset's balance just after this movement


@dataclass(frozen=True, slots=True)
class Statement:
    """Every movement of local days ``first`` to ``last`` (both included), oldest first."""

    first: date
    last: date
    opening: dict[str, int]  # per asset, the balance before the first day
    lines: list[Line]

    @property
    def closing(self) -> dict[str, int]:
        balances = dict(self.opening)
        for line in self.lines:
            balances[line.move.asset] = line.balance_minor
        return balances


def local_days(first: date, last: date, zone: str) -> tuple[datetime, datetime]:
    """``[since, until)``: from local midnight of ``first`` to the one after ``last``."""
    local = ZoneInfo(zone)
    since = datetime.combine(first, time.min, local)
    return since, datetime.combine(last + timedelta(days=1), time.min, local)


async def for_days(core: Core, *, party_id: int, first: date, last: date) -> Statement:
    since, until = local_days(first, last, core.settings.timezone)
    moves = await between(core, party_id=party_id, since=since, until=until)
    if len(moves) >= MAX_ROWS:  # the oldest would be missing and the balances wrong
        raise Refused(reason=f"more than {MAX_ROWS:,} movements: ask for fewer days")
    opening = await _balances_before(core, party_id=party_id, at=since)
    running = dict(opening)
    lines = []
    for move in reversed(moves):
        running[move.asset] = running.get(move.asset, 0) + move.amount_minor
        lines.append(Line(move, running[move.asset]))
    return Statement(first=first, last=last, opening=opening, lines=lines)


def _major(amount_minor: int) -> str:
    return format_minor(amount_minor).replace(",", "")


def as_csv(doc: Statement, *, zone: str) -> bytes:
    """Oldest first, local time, amounts and balances in major units with a sign."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["date", "time", "kind", "asset", "amount", "balance", "reference"])
    local = ZoneInfo(zone)
    for line in doc.lines:
        move = line.move
        at = move.at.astimezone(local)
        writer.writerow(
            [
                f"{at:%Y-%m-%d}",
                f"{at:%H:%M:%S}",
                move.kind,
                move.asset,
                _major(move.amount_minor),
                _major(line.balance_minor),
                move.reference,
            ]
        )
    return out.getvalue().encode()


def _mine(party_id: int) -> Any:
    """The ids of the party's MAIN accounts (stock of each operator, cash), as a subquery."""
    return (
        select(account_t.c.id)
        .where(account_t.c.party_id == party_id, account_t.c.kind == AccountKind.MAIN)
        .scalar_subquery()
    )


async def _balances_before(core: Core, *, party_id: int, at: datetime) -> dict[str, int]:
    """Per asset, what the party's MAIN accounts held just before ``at`` (one GROUP BY)."""
    mine = _mine(party_id)
    signed = case(
        (transfer_t.c.credit_account_id.in_(mine), transfer_t.c.amount_minor),
        else_=-transfer_t.c.amount_minor,
    )
    query = (
        select(transfer_t.c.asset, func.sum(signed))
        .where(
            or_(
                transfer_t.c.debit_account_id.in_(mine),
                transfer_t.c.credit_account_id.in_(mine),
            ),
            transfer_t.c.created_at < at,
        )
        .group_by(transfer_t.c.asset)
    )
    async with core.sessions() as session:
        rows = (await session.execute(query)).all()
    return {asset: int(total) for asset, total in rows if total}


async def _movements(
    core: Core,
    *,
    party_id: int,
    limit: int,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Movement]:
    async with core.sessions() as session:
        mine = _mine(party_id)
        rows = await session.execute(
            select(
                transfer_t.c.created_at,
                transfer_t.c.kind,
                transfer_t.c.asset,
                transfer_t.c.amount_minor,
                transfer_t.c.reference,
                transfer_t.c.credit_account_id.in_(mine),
            )
            .where(
                or_(
                    transfer_t.c.debit_account_id.in_(mine),
                    transfer_t.c.credit_account_id.in_(mine),
                )
            )
            .where(
                transfer_t.c.created_at >= since if since else true(),
                transfer_t.c.created_at < until if until else true(),
            )
            .order_by(transfer_t.c.id.desc())
            .limit(limit)
        )
        return [
            Movement(at, kind, asset, amount if incoming else -amount, reference)
            for at, kind, asset, amount, reference, incoming in rows
        ]
