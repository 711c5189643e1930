"""Support cases a retailer opens about a top-up (the worker opens them for unknown outcomes),
a distributor's queue (the open cases of its retailers), and the closing of a case whose top-up
becomes final. Settling cases is core/services/cases.py.

Invariant: one case per top-up (a unique column): a retailer reporting a top-up the worker has
already escalated, or reporting it twice, is shown the case that exists; a top-up escalated
again after a retry finds its case open. A case about a top-up that becomes final closes in the
same transaction (:func:`close_settled`), whoever settled it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.context import Core
from core.errors import NotFound
from core.models import CaseState, Party, SupportCase, Topup
from core.models.types import utcnow
from core.services.audit import Actor, record

case_t = SupportCase.__table__  # type: ignore[attr-defined]
party_t = Party.__table__  # type: ignore[attr-defined]
topup_t = Topup.__table__  # type: ignore[attr-defined]

RETAILER_REPORT = "retailer_report"
UNKNOWN_OUTCOME = "unknown_outcome"


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


@dataclass(frozen=True, slots=True)
class Closing:
    """Who settled a top-up, and on what: its case is closed with these."""

    actor: Actor
    note: str | None = None
    evidence: Mapping[str, object] = field(default_factory=dict)


_SYSTEM = Closing(actor=Actor.system())
_OPEN_OF = select(case_t.c.id, case_t.c.topup_id, case_t.c.party_id, case_t.c.evidence).where(
    case_t.c.topup_id.in_(bindparam("ids", expanding=True)), case_t.c.state == CaseState.OPEN
)


async def close_settled(
    session: AsyncSession,
    settled: Sequence[tuple[str, str, Mapping[str, Any], Closing | None]],
) -> None:
    """Close the open cases of top-ups made final in this transaction: (top-up id, its final
    state, the row written (b_* values), who settled it or None for the worker). One query when
    none has a case, which is the worker's usual batch."""
    if not settled:
        return
    by_id = {topup_id: (state, row, closing) for topup_id, state, row, closing in settled}
    found = (await session.execute(_OPEN_OF, {"ids": list(by_id)})).all()
    for case_id, topup_id, party_id, evidence in found:
        state, row, closing = by_id[topup_id]
        closing = closing or _SYSTEM
        record_ = {
            "provider_ref": row.get("b_provider_ref"),
            "operator_ref": row.get("b_operator_txn_id"),
            **closing.evidence,
        }
        await session.execute(
            update(case_t)
            .where(case_t.c.id == case_id)
            .values(
                state=CaseState.RESOLVED,
                resolution=str(state),
                resolved_by=closing.actor.label,
                resolved_at=utcnow(),
                note=closing.note[:400] if closing.note else case_t.c.note,
                evidence={**(evidence or {}), "settled": record_},
            )
        )
        await record(
            session,
            actor=closing.actor,
            action="support.resolve",
            subject_party_id=party_id,
            reference=topup_id,
            details={"case": case_id, "resolution": str(state), "note": closing.note},
        )


async def case_for_escalation(
    session: AsyncSession, *, topup_id: str, party_id: int
) -> tuple[int, bool]:
    """The case an escalated top-up is held by, and whether it is new: its case (a retailer's
    report, a retry that did not settle it; reopened if it was closed) or a new one."""
    query = select(case_t.c.id, case_t.c.state).where(case_t.c.topup_id == topup_id)
    existing = (await session.execute(query)).first()
    if existing is None:
        case = SupportCase(topup_id=topup_id, party_id=party_id, reason=UNKNOWN_OUTCOME)
        session.add(case)
        await session.flush()
        return case.id or 0, True
    case_id, state = existing
    if state != CaseState.OPEN:  # settled once, open again (reported after it was answered)
        await session.execute(
            update(case_t)
            .where(case_t.c.id == case_id)
            .values(state=CaseState.OPEN, resolution=None, resolved_at=None, escalated_at=None)
        )
    return int(case_id), False
