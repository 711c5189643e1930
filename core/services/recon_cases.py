"""The support case a reconciliation mismatch opens, once.

Invariant: a mismatch is recorded on its case once. A top-up has at most one case: if it has none,
one is opened; if it has one without reconciliation evidence, the evidence is added (and a
resolved case reopened under the mismatch's reason); if it already carries it, nothing changes.
A transaction that is not ours gets a case keyed by the aggregator's id (``reference``), held by
the platform. Evidence names no phone number.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Core
from core.models import CaseState, SupportCase
from core.services.audit import Actor, record
from core.services.case_views import case_t
from core.services.chain import platform

ACTOR = Actor(label="reconcile", channel="system")
KEY = "recon"  # where a case's evidence keeps the mismatch


async def open_recon_case(
    core: Core,
    *,
    reason: str,
    evidence: dict[str, Any],
    topup_id: str | None = None,
    party_id: int | None = None,
    reference: str | None = None,
) -> int:
    """1 if this recorded the mismatch (a case opened, or evidence added), else 0."""
    try:
        return await _record(core, reason, evidence, topup_id, party_id, reference)
    except IntegrityError:  # opened by someone else meanwhile (a report, a second run)
        return await _record(core, reason, evidence, topup_id, party_id, reference)


async def _record(
    core: Core,
    reason: str,
    evidence: dict[str, Any],
    topup_id: str | None,
    party_id: int | None,
    reference: str | None,
) -> int:
    where = case_t.c.topup_id == topup_id if topup_id else case_t.c.reference == reference
    async with core.transaction() as session:
        found = (
            await session.execute(
                select(case_t.c.id, case_t.c.state, case_t.c.evidence).where(where)
            )
        ).first()
        if found is None:
            owner = party_id if party_id is not None else (await platform(session)).id
            case = SupportCase(
                topup_id=topup_id,
                reference=reference,
                party_id=owner or 0,
                reason=reason,
                evidence={KEY: evidence},
            )
            session.add(case)
            await session.flush()
            await _audit(
                session, case.id or 0, owner, topup_id or reference, reason, "support.open"
            )
            return 1
        case_id, state, kept = found
        kept = dict(kept or {})
        if KEY in kept:
            return 0
        values: dict[str, Any] = {"evidence": {**kept, KEY: evidence}}
        if state != CaseState.OPEN:
            values |= {"state": CaseState.OPEN, "reason": reason, "resolution": None}
            values |= {"resolved_at": None, "resolved_by": None, "escalated_at": None}
        await session.execute(update(case_t).where(case_t.c.id == case_id).values(**values))
        await _audit(session, case_id, party_id, topup_id or reference, reason, "support.evidence")
        return 1


async def _audit(
    session: AsyncSession,
    case_id: int,
    party_id: int | None,
    reference: str | None,
    reason: str,
    action: str,
) -> None:
    await record(
        session,
        actor=ACTOR,
        action=action,
        subject_party_id=party_id,
        reference=reference,
        details={"case": case_id, "reason": reason},
    )
