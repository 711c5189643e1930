"""A party's recent movements: what a mini statement shows.

A movement is one transfer into or out of one of the party's MAIN accounts (its stock of an
operator, its cash), signed from the party's side: a top-up's reservation is ``-``, its refund
``+``. The ledger's transfers are immutable, so the statement is a read of them, never a copy.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, true

from core.context import Core
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


async def between(
    core: Core, *, party_id: int, since: datetime, until: datetime
) -> list[Movement]:
    """Every movement in ``[since, until)``, newest first (at most MAX_ROWS)."""
    return await _movements(core, party_id=party_id, limit=MAX_ROWS, since=since, until=until)


def as_csv(movements: list[Movement], *, zone: str) -> bytes:
    """Oldest first, local time, amounts in major units with a sign: for a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["date", "time", "kind", "asset", "amount", "reference"])
    local = ZoneInfo(zone)
    for move in reversed(movements):
        at = move.at.astimezone(local)
        amount = format_minor(move.amount_minor).replace(",", "")
        writer.writerow(
            [f"{at:%Y-%m-%d}", f"{at:%H:%M:%S}", move.kind, move.asset, amount, move.reference]
        )
    return out.getvalue().encode()


async def _movements(
    core: Core,
    *,
    party_id: int,
    limit: int,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Movement]:
    async with core.sessions() as session:
        mine = (
            select(account_t.c.id)
            .where(account_t.c.party_id == party_id, account_t.c.kind == AccountKind.MAIN)
            .scalar_subquery()
        )
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
