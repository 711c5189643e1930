"""Reconciliation with the aggregator: one local day of its transaction report against our
top-ups, every row classified, ours still open settled from its record, every other disagreement
a support case with both sides as evidence.

Invariant: running it twice changes nothing the second time. The report is staged by the
aggregator's transaction id (core/models/recon.py: the same row overwritten, not added); a top-up
it settles is final afterwards and matches; a disagreement is recorded on its case once (a case
carrying this evidence is left alone). Memory stays constant: the report is staged page by page,
our side is read in keyset pages and the aggregator's unmatched rows likewise; the database
does the matching.

Classes (docs/RECONCILIATION.md): matched; resolved (ours unknown, theirs final); pending (both
not final yet: the worker's); amount mismatch; status mismatch (we failed or unknown-and-final,
they delivered, and the reverse); missing at the aggregator (we delivered, it has no record);
unknown to us (its transaction names no top-up of ours).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, exists, or_, select

from core.context import Core
from core.logging import get_logger
from core.models import ReconLine, Topup, TopupState
from core.models.topup import OPEN_STATES
from core.providers.port import AirtimeProvider, Outcome, ProviderTransaction
from core.services import recon_money, support
from core.services.audit import Actor
from core.services.cases import Outbox, settle
from core.services.recon_cases import open_recon_case
from core.services.recon_report import (
    CASE_REASON,
    MISMATCHES,
    Kind,
    Report,
    Tally,
    day_window,
)
from core.services.recon_stage import stage

__all__ = ["MISMATCHES", "Kind", "Report", "Tally", "day_window", "reconcile", "reconcile_all"]

log = get_logger(__name__)
line_t = ReconLine.__table__  # type: ignore[attr-defined]
topup_t = Topup.__table__  # type: ignore[attr-defined]

PAGE = 1_000  # rows per page on our side
ACTOR = Actor(label="reconcile", channel="system")


async def reconcile_all(core: Core, *, day: date, outbox: Outbox) -> list[Report]:
    """Every aggregator account's day (AIRGATE_PROVIDERS), one after another."""
    return [
        await reconcile(core, adapter, day=day, outbox=outbox, account=name)
        for name, adapter in core.providers.items()
    ]


async def reconcile(
    core: Core,
    provider: AirtimeProvider,
    *,
    day: date,
    outbox: Outbox,
    account: str | None = None,
) -> Report:
    """One aggregator account's day (``account``: its name in AIRGATE_PROVIDERS, by default the
    adapter's): only the top-ups it holds (``topup.provider``) are matched with its report."""
    start, end = day_window(day, core.settings.timezone)
    name = account or provider.name
    report = Report(day=day, provider=name, start=start, end=end)
    report.first = name == next(iter(core.providers), name)
    report.pulled = await stage(core, provider, name, start=start, end=end, money=report.money)
    report.money.close_chain()
    await recon_money.ours(
        core,
        report.money,
        held=report.held(),
        start=start,
        end=end,
        price_bps=recon_money.price_bps(core, name),
    )
    await _ours(core, report)
    await _theirs(core, report)
    await _elsewhere(core, report)
    await _settle_pending_ones(core, report, outbox=outbox)
    log.info(
        "reconcile.done",
        day=day.isoformat(),
        provider=provider.name,
        pulled=report.pulled,
        ours=report.ours,
        **{k: v.count for k, v in report.classes.items()},
        cases_opened=report.cases_opened,
        at_stake_minor=report.at_stake_minor,
        money=report.money.as_json(),
    )
    return report


_PAGE_COLUMNS = (
    topup_t.c.id,
    topup_t.c.created_at,
    topup_t.c.state,
    topup_t.c.amount_minor,
    topup_t.c.party_id,
)


async def _ours(core: Core, report: Report) -> None:
    """Our top-ups of the day, a keyset page at a time, each with the aggregator's row of its
    reference (or none). The page is chosen first and then joined, so each page costs 1,000
    index lookups, never a join over the whole day."""
    day = (
        topup_t.c.created_at >= report.start,
        topup_t.c.created_at < report.end,
        report.held(),
    )
    after: tuple[datetime, str] | None = None
    while True:
        chosen = select(*_PAGE_COLUMNS).where(*day)
        if after is not None:
            chosen = chosen.where(
                or_(
                    topup_t.c.created_at > after[0],
                    and_(topup_t.c.created_at == after[0], topup_t.c.id > after[1]),
                )
            )
        page = chosen.order_by(topup_t.c.created_at, topup_t.c.id).limit(PAGE).subquery()
        query = (
            select(
                *page.c,
                line_t.c.outcome,
                line_t.c.amount_minor,
                line_t.c.provider_ref,
                line_t.c.operator_ref,
                line_t.c.at,
            )
            .select_from(
                page.outerjoin(
                    line_t,
                    and_(line_t.c.reference == page.c.id, line_t.c.provider == report.provider),
                )
            )
            .order_by(page.c.created_at, page.c.id)
        )
        async with core.sessions() as session:
            rows = (await session.execute(query)).all()
        for row in rows:
            report.ours += 1
            await _classify(core, report, row)
        if len(rows) < PAGE:
            return
        after = (rows[-1][1], rows[-1][0])


async def _classify(core: Core, report: Report, row: Any) -> None:
    topup_id, _created, state, amount, party_id, outcome, theirs, provider_ref, opref, at = row
    said = {
        "ours": {"state": state, "amount_minor": amount},
        "theirs": None
        if outcome is None
        else {
            "outcome": outcome,
            "amount_minor": theirs,
            "provider_ref": provider_ref,
            "operator_ref": opref,
            "at": at.isoformat() if at else None,
        },
    }
    kind, stake = _kind(state, amount, outcome, theirs)
    report.add(kind, amount, stake)
    if kind in MISMATCHES:
        opened = await open_recon_case(
            core,
            topup_id=topup_id,
            party_id=party_id,
            reason=CASE_REASON[kind],
            evidence={"day": report.day.isoformat(), "kind": str(kind), **said},
        )
        report.cases_opened += opened


def _kind(state: str, amount: int, outcome: str | None, theirs: int | None) -> tuple[Kind, int]:
    """The class of one of our top-ups against the aggregator's row, and the money at stake."""
    held = state in (*OPEN_STATES, TopupState.ESCALATED)
    if outcome is None:
        if state == TopupState.DELIVERED:
            return Kind.MISSING, amount
        return (Kind.PENDING, 0) if held else (Kind.MATCHED, 0)  # failed: charged nowhere
    if outcome == Outcome.UNKNOWN:
        return (Kind.PENDING, 0) if held else (Kind.STATUS, amount)
    if held:
        return Kind.RESOLVED, 0
    if state == TopupState.FAILED and outcome == Outcome.FAILED:
        return Kind.MATCHED, 0
    if state == TopupState.DELIVERED and outcome == Outcome.DELIVERED:
        if theirs is not None and theirs != amount:
            return Kind.AMOUNT, abs(theirs - amount)
        return Kind.MATCHED, 0
    return Kind.STATUS, amount


async def _theirs(core: Core, report: Report) -> None:
    """The aggregator's rows of the day that name no top-up of ours."""
    base = (
        select(
            line_t.c.id,
            line_t.c.provider_ref,
            line_t.c.reference,
            line_t.c.outcome,
            line_t.c.amount_minor,
            line_t.c.operator_ref,
            line_t.c.at,
        )
        .where(
            line_t.c.provider == report.provider,
            line_t.c.at >= report.start,
            line_t.c.at < report.end,
            ~exists().where(topup_t.c.id == line_t.c.reference),
        )
        .order_by(line_t.c.id)
        .limit(PAGE)
    )
    after = 0
    while True:
        async with core.sessions() as session:
            rows = (await session.execute(base.where(line_t.c.id > after))).all()
        for line_id, provider_ref, reference, outcome, amount, opref, at in rows:
            delivered = amount or 0 if outcome == Outcome.DELIVERED else 0
            report.add(Kind.UNKNOWN_TO_US, delivered, delivered)
            evidence = {
                "day": report.day.isoformat(),
                "kind": str(Kind.UNKNOWN_TO_US),
                "theirs": {
                    "outcome": outcome,
                    "amount_minor": amount,
                    "provider_ref": provider_ref,
                    "reference": reference,
                    "operator_ref": opref,
                    "at": at.isoformat(),
                },
            }
            report.cases_opened += await open_recon_case(
                core,
                reference=f"{report.provider}:{provider_ref}",
                reason=CASE_REASON[Kind.UNKNOWN_TO_US],
                evidence=evidence,
            )
            after = line_id
        if len(rows) < PAGE:
            return


async def _elsewhere(core: Core, report: Report) -> None:
    """Its rows for top-ups of ours another account holds (routing moved them on after a definite
    no here): a failed attempt is as it should be; a delivery here is a status mismatch, the
    top-up may have reached the phone twice."""
    query = (
        select(
            topup_t.c.id,
            topup_t.c.party_id,
            topup_t.c.state,
            topup_t.c.amount_minor,
            topup_t.c.provider,
            line_t.c.provider_ref,
            line_t.c.amount_minor,
            line_t.c.at,
        )
        .join(topup_t, topup_t.c.id == line_t.c.reference)
        .where(
            line_t.c.provider == report.provider,
            line_t.c.at >= report.start,
            line_t.c.at < report.end,
            line_t.c.outcome == Outcome.DELIVERED,
            ~report.held(),
        )
        .order_by(topup_t.c.id)
    )
    async with core.sessions() as session:
        rows = (await session.execute(query)).all()  # rare: bounded by the day's moved top-ups
    for topup_id, party_id, state, amount, holder, provider_ref, theirs, at in rows:
        report.add(Kind.STATUS, amount, theirs or amount)
        evidence = {
            "day": report.day.isoformat(),
            "kind": str(Kind.STATUS),
            "ours": {"state": state, "amount_minor": amount, "held_by": holder},
            "theirs": {
                "outcome": "delivered",
                "amount_minor": theirs,
                "provider_ref": provider_ref,
                "account": report.provider,
                "at": at.isoformat(),
            },
        }
        report.cases_opened += await open_recon_case(
            core,
            topup_id=topup_id,
            party_id=party_id,
            reason=CASE_REASON[Kind.STATUS],
            evidence=evidence,
        )


async def _settle_pending_ones(core: Core, report: Report, *, outbox: Outbox) -> None:
    """Ours still held whose row at the aggregator is final: settled from that record, through
    the finisher (their cases, if any, close in the same transaction)."""
    query = (
        select(topup_t.c.id, line_t.c.outcome, line_t.c.provider_ref, line_t.c.operator_ref)
        .join(
            line_t,
            and_(line_t.c.reference == topup_t.c.id, line_t.c.provider == report.provider),
        )
        .where(
            topup_t.c.created_at >= report.start,
            topup_t.c.created_at < report.end,
            topup_t.c.state.in_((*OPEN_STATES, TopupState.ESCALATED)),
            line_t.c.outcome.in_((Outcome.DELIVERED, Outcome.FAILED)),
            report.held(),
        )
        .order_by(topup_t.c.id)
        .limit(PAGE)
    )
    after = ""
    while True:
        async with core.sessions() as session:
            rows = (await session.execute(query.where(topup_t.c.id > after))).all()
        for topup_id, outcome, provider_ref, opref in rows:
            state = TopupState.DELIVERED if outcome == Outcome.DELIVERED else TopupState.FAILED
            record = ProviderTransaction(
                reference=topup_id,
                outcome=Outcome(outcome),
                provider_ref=provider_ref,
                operator_ref=opref,
                delivered_minor=None,
                currency="",
                at=report.end,
            )
            evidence = {"reconciled": report.day.isoformat(), "provider_ref": provider_ref}
            closing = support.Closing(actor=ACTOR, evidence=evidence)
            settled = await settle(
                core, topup_id, state, closing=closing, outbox=outbox, txn=record
            )
            report.settled += settled
            after = topup_id
        if len(rows) < PAGE:
            return
