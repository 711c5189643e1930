"""Support cases as people see them: one case with its top-up and its shop, and lists of them.

Numbers are shown as the shop itself writes them (``national``) to the shop, its distributor and
the console; evidence keeps none (core/services/cases.py writes masked or no numbers there).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select

from core.context import Core
from core.errors import NotFound
from core.models import CaseState, Party, SupportCase, Topup
from core.money import format_minor
from core.msisdn import national

case_t = SupportCase.__table__  # type: ignore[attr-defined]
party_t = Party.__table__  # type: ignore[attr-defined]
topup_t = Topup.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class CaseView:
    id: int
    reason: str
    state: str
    resolution: str | None
    note: str | None
    opened_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    escalated_at: datetime | None
    reference: str | None
    evidence: dict[str, Any]
    party_id: int
    shop_name: str
    shop_msisdn: str
    parent_id: int | None
    topup_id: str | None
    topup_state: str | None
    msisdn: str | None  # the customer's
    operator_code: str | None
    amount_minor: int | None
    currency: str | None
    topup_created_at: datetime | None
    provider_ref: str | None
    operator_ref: str | None
    provider: str | None  # the aggregator account holding the top-up (core/routing/)

    def as_json(self) -> dict[str, Any]:
        """For ``--json``: every field, times in ISO 8601 (UTC)."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()}


_VIEW: Select[Any] = (
    select(
        case_t.c.id,
        case_t.c.reason,
        case_t.c.state,
        case_t.c.resolution,
        case_t.c.note,
        case_t.c.opened_at,
        case_t.c.resolved_at,
        case_t.c.resolved_by,
        case_t.c.escalated_at,
        case_t.c.reference,
        case_t.c.evidence,
        party_t.c.id,
        party_t.c.name,
        party_t.c.msisdn,
        party_t.c.parent_id,
        topup_t.c.id,
        topup_t.c.state,
        topup_t.c.msisdn,
        topup_t.c.operator_code,
        topup_t.c.amount_minor,
        topup_t.c.currency,
        topup_t.c.created_at,
        topup_t.c.provider_ref,
        topup_t.c.operator_txn_id,
        topup_t.c.provider,
    )
    .join(party_t, party_t.c.id == case_t.c.party_id)
    .outerjoin(topup_t, topup_t.c.id == case_t.c.topup_id)
)


def _view(row: Any) -> CaseView:
    values = list(row)
    values[10] = dict(values[10] or {})
    return CaseView(*values)


async def get(core: Core, case_id: int) -> CaseView:
    async with core.sessions() as session:
        row = (await session.execute(_VIEW.where(case_t.c.id == case_id))).first()
    if row is None:
        raise NotFound(kind="support case", key=str(case_id))
    return _view(row)


async def of_topup(core: Core, topup_id: str) -> CaseView | None:
    async with core.sessions() as session:
        row = (await session.execute(_VIEW.where(case_t.c.topup_id == topup_id))).first()
    return None if row is None else _view(row)


async def listed(
    core: Core,
    *,
    state: str | None = CaseState.OPEN,
    escalated: bool = False,
    distributor_id: int | None = None,
    limit: int = 100,
) -> list[CaseView]:
    """Cases oldest first: open ones by default; ``escalated``: those handed to the platform."""
    query = _VIEW.order_by(case_t.c.opened_at, case_t.c.id).limit(limit)
    if state is not None:
        query = query.where(case_t.c.state == state)
    if escalated:
        query = query.where(case_t.c.escalated_at.is_not(None))
    if distributor_id is not None:
        query = query.where(party_t.c.parent_id == distributor_id)
    async with core.sessions() as session:
        return [_view(row) for row in (await session.execute(query)).all()]


def fields_of(view: CaseView) -> dict[str, object]:
    """What the texts about a case fill in."""
    amount = (
        format_minor(view.amount_minor, view.currency or "")
        if view.amount_minor is not None
        else "-"
    )
    return {
        "case": view.id,
        "ref": view.topup_id or view.reference or "-",
        "amount": amount,
        "number": national(view.msisdn) if view.msisdn else "-",
        "name": view.shop_name[:24],
    }
