"""Support cases a retailer opens about a top-up (the worker opens them for unknown outcomes).

Invariant: one case per top-up (a unique column): a retailer reporting a top-up the worker has
already escalated, or reporting it twice, is shown the case that exists.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from core.context import Core
from core.errors import NotFound
from core.models import SupportCase, Topup
from core.services.audit import Actor, record

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
