"""Settlement runs: settle a month for every pair of levels (or one party's), show a run by
regenerating its documents (and checking their hashes), list runs.

Invariant: a pair's months settle in order and once each: a run for a month the pair has already
settled is not made again, nor one for a month before its latest run (its corrections belong in
the next run). The run row is immutable (triggers, migration 0011).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Core
from core.errors import NotFound, Refused
from core.models import Agreement, Party, Role, SettlementRun, Transfer
from core.models.types import utcnow
from core.services import parties
from core.services.audit import Actor, record
from core.services.settlement.documents import Correction, Settlement, Side, as_csv, as_pdf
from core.services.settlement.figures import Flows, PairFlows, Terms, month_bounds, pair_flows

party_t = Party.__table__  # type: ignore[attr-defined]
run_t = SettlementRun.__table__  # type: ignore[attr-defined]
agreement_t = Agreement.__table__  # type: ignore[attr-defined]
transfer_t = Transfer.__table__  # type: ignore[attr-defined]

Pair = tuple[int, int]  # (seller, buyer)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Outcome:
    seller_id: int
    buyer_id: int
    run: SettlementRun | None  # None: not settled now (see ``note``)
    note: str = ""  # "already settled as run #n", "a later month is settled"


def _checked_period(core: Core, period: str) -> tuple[datetime, datetime]:
    try:
        since, until = month_bounds(period, core.settings.timezone)
    except ValueError:
        raise Refused(reason=f"{period!r} is not a month (YYYY-MM)") from None
    if until > utcnow():
        raise Refused(reason=f"{period} is not over yet: a month is settled once it has ended")
    return since, until


async def _pairs(session: AsyncSession, party_id: int | None) -> list[Pair]:
    """Every (seller, buyer) of the chain below the platform, or those ``party_id`` is in."""
    query = select(party_t.c.parent_id, party_t.c.id).where(
        party_t.c.parent_id.is_not(None), party_t.c.role != Role.PLATFORM
    )
    if party_id is not None:
        query = query.where((party_t.c.id == party_id) | (party_t.c.parent_id == party_id))
    return [(s, b) for s, b in await session.execute(query.order_by(party_t.c.id))]


async def _terms(session: AsyncSession, pairs: list[Pair]) -> dict[Pair, Terms]:
    query = select(
        agreement_t.c.seller_id, agreement_t.c.buyer_id, agreement_t.c.operator_code,
        agreement_t.c.discount_bps, agreement_t.c.commission_bps,
    )  # fmt: skip
    wanted = set(pairs)
    found: dict[Pair, Terms] = {pair: {} for pair in pairs}
    for s, b, op, discount, commission in await session.execute(query):
        if (s, b) in wanted:
            found[(s, b)][op] = (discount, commission or 0)
    return found


async def sides_of(session: AsyncSession, ids: set[int]) -> dict[int, Side]:
    query = select(party_t.c.id, party_t.c.name, party_t.c.msisdn).where(party_t.c.id.in_(ids))
    return {pid: Side(pid, name, msisdn) for pid, name, msisdn in await session.execute(query)}


async def _runs_of(session: AsyncSession, pairs: list[Pair]) -> dict[Pair, list[SettlementRun]]:
    """Each pair's runs, oldest month first."""
    found: dict[Pair, list[SettlementRun]] = {pair: [] for pair in pairs}
    rows = await session.execute(select(SettlementRun).order_by(SettlementRun.period))
    for run in rows.scalars():
        if (run.seller_id, run.buyer_id) in found:
            found[(run.seller_id, run.buyer_id)].append(run)
    return found


def _compose(
    *,
    period: str,
    zone: str,
    until: datetime,
    sides: dict[int, Side],
    pair: Pair,
    through_id: int,
    terms: Terms,
    flows: PairFlows,
    earlier: list[SettlementRun],
) -> Settlement:
    """The settlement of ``pair`` given its earlier runs (months before ``period``)."""
    previous = earlier[-1] if earlier else None
    opening = previous.amount_due_minor if previous else flows.before.owed(terms)
    by_period = {run.period: run.id for run in earlier}
    corrections = []
    for late in flows.late:
        local = late.at.astimezone(until.tzinfo)
        month = f"{local:%Y-%m}"
        one = Flows()
        one.add(late.kind, late.asset, late.amount_minor)
        corrections.append(Correction(late, month, by_period.get(month), one.owed(terms)))
    return Settlement(
        period=period,
        zone=zone,
        period_end=until,
        seller=sides[pair[0]],
        buyer=sides[pair[1]],
        through_transfer_id=through_id,
        previous=(previous.id or 0, previous.period) if previous else None,
        terms=terms,
        flows=flows,
        opening_due_minor=opening,
        corrections=corrections,
    )


async def settle(
    core: Core, *, period: str, actor: Actor, party_ref: str | None = None
) -> list[Outcome]:
    since, until = _checked_period(core, period)
    zone = core.settings.timezone
    async with core.transaction() as session:
        party_id = None
        if party_ref is not None:
            found = await parties.get_party(session, party_ref, country=core.settings.country)
            party_id = found.id
        pairs = await _pairs(session, party_id)
        runs = await _runs_of(session, pairs)
        outcomes, todo = [], []
        for pair in pairs:
            done = [run for run in runs[pair] if run.period >= period]
            if done:
                same = done[0].period == period
                note = (
                    f"already settled as run #{done[0].id}" if same else "a later month is settled"
                )
                outcomes.append(Outcome(*pair, None, note))
            else:
                todo.append(pair)
        through = (
            await session.execute(select(func.coalesce(func.max(transfer_t.c.id), 0)))
        ).scalar_one()
        previous = {
            pair: (runs[pair][-1].through_transfer_id if runs[pair] else 0) for pair in todo
        }
        flows = await pair_flows(
            session, since=since, until=until, through_id=through, pairs=previous
        )
        terms = await _terms(session, todo)
        sides = await sides_of(session, {p for pair in todo for p in pair})
        for pair in todo:
            doc = _compose(
                period=period, zone=zone, until=until, sides=sides, pair=pair, through_id=through,
                terms=terms[pair], flows=flows[pair], earlier=runs[pair],
            )  # fmt: skip
            run = SettlementRun(
                period=period,
                seller_id=pair[0],
                buyer_id=pair[1],
                through_transfer_id=through,
                previous_id=doc.previous[0] if doc.previous else None,
                terms=json.dumps(terms[pair], sort_keys=True),
                amount_due_minor=doc.amount_due_minor,
                csv_sha256=sha256(as_csv(doc)),
                pdf_sha256=sha256(as_pdf(doc)),
                created_by=actor.label,
            )
            session.add(run)
            outcomes.append(Outcome(*pair, run))
        await session.flush()
        for outcome in outcomes:
            if outcome.run is not None:
                await record(
                    session, actor=actor, action="settlement.run",
                    subject_party_id=outcome.buyer_id, reference=str(outcome.run.id),
                    details={"period": period, "seller_id": outcome.seller_id,
                             "amount_due_minor": outcome.run.amount_due_minor},
                )  # fmt: skip
    return sorted(outcomes, key=lambda o: (o.seller_id, o.buyer_id))


@dataclass(frozen=True, slots=True)
class Shown:
    run: SettlementRun
    settlement: Settlement
    csv: bytes
    pdf: bytes

    @property
    def verified(self) -> bool:
        """The documents regenerated now are byte for byte the ones the run recorded."""
        return (sha256(self.csv), sha256(self.pdf)) == (self.run.csv_sha256, self.run.pdf_sha256)


async def show(core: Core, *, run_id: int) -> Shown:
    """Regenerate a run's documents from the ledger and its own terms."""
    zone = core.settings.timezone
    async with core.sessions() as session:
        run = await session.get(SettlementRun, run_id)
        if run is None:
            raise NotFound(kind="settlement run", key=f"#{run_id}")
        pair = (run.seller_id, run.buyer_id)
        earlier = [r for r in (await _runs_of(session, [pair]))[pair] if r.period < run.period]
        previous = earlier[-1].through_transfer_id if earlier else 0
        since, until = month_bounds(run.period, zone)
        flows = await pair_flows(
            session, since=since, until=until, through_id=run.through_transfer_id,
            pairs={pair: previous},
        )  # fmt: skip
        sides = await sides_of(session, set(pair))
    terms: Terms = {op: (d, c) for op, (d, c) in json.loads(run.terms).items()}
    doc = _compose(
        period=run.period, zone=zone, until=until, sides=sides, pair=pair,
        through_id=run.through_transfer_id, terms=terms, flows=flows[pair], earlier=earlier,
    )  # fmt: skip
    return Shown(run, doc, as_csv(doc), as_pdf(doc))


async def list_runs(
    core: Core, *, party_id: int | None = None, period: str | None = None
) -> list[SettlementRun]:
    query = select(SettlementRun).order_by(SettlementRun.period, SettlementRun.id)  # type: ignore[arg-type]
    if party_id is not None:
        query = query.where(
            (SettlementRun.seller_id == party_id) | (SettlementRun.buyer_id == party_id)  # type: ignore[arg-type]
        )
    if period is not None:
        query = query.where(SettlementRun.period == period)  # type: ignore[arg-type]
    async with core.sessions() as session:
        return list((await session.execute(query)).scalars())
