"""How a case starts and where it goes: a retailer's report is answered from the aggregator's
record when it can be (the case opens and closes at once); otherwise it goes to the retailer's
distributor, who is told; a case nobody settled within ``case_answer_s`` goes to the platform.

Invariant: a report is answered only when the aggregator's record is final and agrees with ours
(or settles a top-up we still hold, through the finisher); a disagreement is never answered, it
is a case with both sides as evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from core.context import Core
from core.errors import NotFound
from core.i18n import t
from core.logging import get_logger
from core.models import CaseState, Resolution, TopupState
from core.models.topup import SETTLEABLE_STATES
from core.models.types import utcnow
from core.msisdn import masked
from core.providers.port import Outcome
from core.services import support
from core.services.audit import Actor, record
from core.services.case_views import CaseView, case_t, fields_of, get
from core.services.cases import Outbox, ask, settle
from core.services.chain import get_party, platform
from core.services.notify import add_owed
from core.services.requests.messages import message_to

log = get_logger(__name__)
ESCALATE_BATCH = 500  # cases handed to the platform per run; the next run takes the rest


@dataclass(frozen=True, slots=True)
class Reported:
    case_id: int
    answer: str | None  # the answer shown at once (the case is then closed), in the shop's tongue
    opened: bool  # a new case (False: the one that exists, still open)


async def report(
    core: Core, *, actor: Actor, party_id: int, topup_id: str, language: str, outbox: Outbox
) -> Reported:
    """A retailer reports one of its top-ups: ask the aggregator first, answer if its record is
    final and agrees; else the case goes to the distributor with what it said."""
    case, opened = await support.open_case(core, actor=actor, party_id=party_id, topup_id=topup_id)
    view = await get(core, case.id or 0)
    asked = await ask(core, view)
    txn = asked.txn
    log.info(
        "case.reported",
        case=view.id,
        topup_id=topup_id,
        msisdn=masked(view.msisdn or ""),
        aggregator=str(txn.outcome) if txn else asked.error and "unreachable",
    )
    if txn is not None and asked.final:
        said = TopupState.DELIVERED if txn.outcome is Outcome.DELIVERED else TopupState.FAILED
        if view.topup_state in SETTLEABLE_STATES:  # we held it: its record settles it now
            closing = support.Closing(actor=actor, evidence=asked.evidence())
            await settle(core, topup_id, said, closing=closing, outbox=outbox, txn=txn)
            return Reported(
                view.id, _answer(core, view, said, txn.at, txn.operator_ref, language), opened
            )
        if view.topup_state == said:
            await _answered(core, view, actor, asked.evidence())
            return Reported(
                view.id, _answer(core, view, said, txn.at, txn.operator_ref, language), opened
            )
    await _to_distributor(core, view, actor, asked.evidence(), outbox=outbox, opened=opened)
    return Reported(view.id, None, opened or view.state != CaseState.OPEN)  # reopened: anew


def _answer(
    core: Core,
    view: CaseView,
    state: TopupState,
    at: datetime,
    operator_ref: str | None,
    language: str,
) -> str:
    local = at.astimezone(ZoneInfo(core.settings.timezone))
    return t(
        language,
        f"support.answer_{state}",
        **fields_of(view),
        time=f"{local:%d/%m %H:%M}",
        opref=operator_ref or "-",
    )


async def _answered(core: Core, view: CaseView, actor: Actor, evidence: dict[str, object]) -> None:
    async with core.transaction() as session:
        await session.execute(
            update(case_t)
            .where(case_t.c.id == view.id)
            .values(
                state=CaseState.RESOLVED,
                resolution=Resolution.ANSWERED,
                resolved_by="aggregator",
                resolved_at=utcnow(),
                evidence={**view.evidence, "answered": evidence},
            )
        )
        await record(
            session,
            actor=actor,
            action="support.answered",
            subject_party_id=view.party_id,
            reference=view.topup_id,
            details={"case": view.id},
        )


async def _to_distributor(
    core: Core,
    view: CaseView,
    actor: Actor,
    evidence: dict[str, object],
    *,
    outbox: Outbox,
    opened: bool,
) -> None:
    """The case (re)opened with the aggregator's word as evidence; the distributor told once."""
    async with core.transaction() as session:
        await session.execute(
            update(case_t)
            .where(case_t.c.id == view.id)
            .values(
                state=CaseState.OPEN,
                resolution=None,
                resolved_at=None,
                resolved_by=None,
                evidence={**view.evidence, "reported": evidence},
            )
        )
        told = opened or view.state != CaseState.OPEN
        owed = []
        if told and view.parent_id is not None:
            parent = await get_party(session, view.parent_id, country=core.settings.country)
            key = f"case:{view.id}:to_parent:{utcnow():%Y%m%d%H%M%S}"
            message = await message_to(
                core, session, parent, key, "alert.case_report", fields_of(view)
            )
            owed = await add_owed(session, [message])
        if view.state != CaseState.OPEN:
            await record(
                session,
                actor=actor,
                action="support.reopen",
                subject_party_id=view.party_id,
                reference=view.topup_id,
                details={"case": view.id},
            )
    await outbox(owed)


async def escalate_overdue(core: Core, *, outbox: Outbox, now: datetime | None = None) -> int:
    """Open cases nobody settled within ``case_answer_s`` go to the platform (one message)."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=core.settings.case_answer_s)
    query = (
        select(case_t.c.id, case_t.c.party_id, case_t.c.topup_id, case_t.c.reference)
        .where(
            case_t.c.state == CaseState.OPEN,
            case_t.c.escalated_at.is_(None),
            case_t.c.opened_at < cutoff,
        )
        .order_by(case_t.c.opened_at)
        .limit(ESCALATE_BATCH)
        .with_for_update(skip_locked=True)
    )
    async with core.transaction() as session:
        rows = (await session.execute(query)).all()
        if not rows:
            return 0
        ids = [row[0] for row in rows]
        await session.execute(update(case_t).where(case_t.c.id.in_(ids)).values(escalated_at=now))
        for case_id, party_id, topup_id, reference in rows:
            await record(
                session,
                actor=Actor.system(),
                action="support.escalate",
                subject_party_id=party_id,
                reference=topup_id or reference,
                details={"case": case_id, "after_s": core.settings.case_answer_s},
            )
        try:
            owner = await platform(session)
        except NotFound:
            return len(ids)
        hours = core.settings.case_answer_s // 3600 or 1
        key = f"cases:escalated:{now:%Y%m%d%H%M%S}"
        fields = {"count": len(ids), "hours": hours, "first": ids[0]}
        message = await message_to(core, session, owner, key, "alert.cases_escalated", fields)
        owed = await add_owed(session, [message])
    await outbox(owed)
    return len(ids)
