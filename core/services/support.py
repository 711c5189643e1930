"""Support cases a retailer opens about a top-up (the worker opens them for unknown outcomes),
and a distributor's queue: the open cases of its retailers.

Invariant: one case per top-up (a unique column): a retailer reporting a top-up the worker has
already escalated, or reporting it twice, is shown the case that exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from core.context import Core
from core.errors import NotFound
from core.models import CaseState, Party, SupportCase, Topup
from core.services.audit import Actor, record

case_t = SupportCase.__table__  # type: ignore[attr-defined]
party_t = Party.__table__  # type: ignore[attr-defined]
topup_t = Topup.__table__  # type: ignore[attr-defined]

RETAILER_REPORT = "retailer_report"


async def recent_topups(core: Core, *, party_id: int, limit: int = 5) -> list[Topup]:
    query = (
        select(Topup)
        .where(col(Topup.party_id) == party_id)
        .order_by(col(Topup.created_at).desc())
        .limit(limit)
    )
    async with core.sessions() as session:
        return list((await session.execute(query)).scalars())


async def open_case(
    core: Core, *, actor: Actor, party_id: int, topup_id: str, note: str | None = None
) -> tuple[SupportCase, bool]:
    """The case about ``topup_id`` (which must be ``party_id``'s), and whether this opened it."""
    try:
        return await _open(core, actor=actor, party_id=party_id, topup_id=topup_id, note=note)
    except IntegrityError:  # a concurrent report of the same top-up won: show its case
        return await _open(core, actor=actor, party_id=party_id, topup_id=topup_id, note=note)


async def _open(
    core: Core, *, actor: Actor, party_id: int, topup_id: str, note: str | None
) -> tuple[SupportCase, bool]:
    async with core.transaction() as session:
        topup = await session.get(Topup, topup_id)
        if topup is None or topup.party_id != party_id:
            raise NotFound(kind="top-up", key=topup_id)
        query = select(SupportCase).where(col(SupportCase.topup_id) == topup_id)
        if (existing := (await session.execute(query)).scalar()) is not None:
            return existing, False
        case = SupportCase(topup_id=topup_id, party_id=party_id, reason=RETAILER_REPORT, note=note)
        session.add(case)
        await session.flush()
        await record(
            session,
            actor=actor,
            action="support.open",
            subject_party_id=party_id,
            reference=topup_id,
            details={"case": case.id, "reason": RETAILER_REPORT},
        )
        return case, True


@dataclass(frozen=True, slots=True)
class QueuedCase:
    """An open case in a distributor's queue, with its retailer and top-up."""

    case_id: int
    reason: str  # "unknown_outcome" (the worker), "retailer_report"
    opened_at: datetime
    party_id: int
    shop_name: str
    shop_msisdn: str
    topup_id: str | None
    msisdn: str | None  # the customer's number
    amount_minor: int | None
    currency: str | None


_QUEUE = (
    select(
        case_t.c.id,
        case_t.c.reason,
        case_t.c.opened_at,
        party_t.c.id,
        party_t.c.name,
        party_t.c.msisdn,
        topup_t.c.id,
        topup_t.c.msisdn,
        topup_t.c.amount_minor,
        topup_t.c.currency,
    )
    .join(party_t, party_t.c.id == case_t.c.party_id)
    .outerjoin(topup_t, topup_t.c.id == case_t.c.topup_id)
    .where(case_t.c.state == CaseState.OPEN)
)


async def queue(
    core: Core, *, distributor_id: int, limit: int = 100, offset: int = 0
) -> list[QueuedCase]:
    """The open cases of ``distributor_id``'s retailers, oldest first."""
    query = (
        _QUEUE.where(party_t.c.parent_id == distributor_id)
        .order_by(case_t.c.opened_at, case_t.c.id)
        .limit(limit)
        .offset(offset)
    )
    async with core.sessions() as session:
        rows = (await session.execute(query)).all()
    return [_queued(row) for row in rows]


async def queued_case(core: Core, *, distributor_id: int, case_id: int) -> QueuedCase:
    """One open case of the queue (NotFound if resolved, or not of this distributor's)."""
    query = _QUEUE.where(party_t.c.parent_id == distributor_id, case_t.c.id == case_id)
    async with core.sessions() as session:
        row = (await session.execute(query)).first()
    if row is None:
        raise NotFound(kind="support case", key=str(case_id))
    return _queued(row)


def _queued(row: Sequence[Any]) -> QueuedCase:
    return QueuedCase(*row)
