"""Staging an aggregator account's report for a day (core/services/reconcile.py): its pages
upserted into ``recon_line`` by the aggregator's transaction id; staging twice is staging once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects import postgresql, sqlite

from core.context import Core
from core.models import ReconLine
from core.providers.port import AirtimeProvider, ProviderTransaction
from core.services.recon_money import Money

line_t = ReconLine.__table__  # type: ignore[attr-defined]

PAGE = 1_000  # rows per staging write
# The aggregator dates a transaction when it received it, a little after we created the top-up;
# a day's report is pulled this much wider so a top-up made at 23:59:59 is still found.
SLACK = timedelta(hours=1)


async def stage(
    core: Core,
    provider: AirtimeProvider,
    name: str,
    *,
    start: datetime,
    end: datetime,
    money: Money | None = None,
) -> int:
    """The report of [start - SLACK, end + SLACK) into recon_line, a page at a time; the count
    of rows dated within the day (their charges and balances added to ``money``)."""
    within = 0
    page: list[dict[str, Any]] = []
    async for tx in provider.transactions(start=start - SLACK, end=end + SLACK):
        if tx.provider_ref is None:
            continue
        if start <= tx.at < end:
            within += 1
            if money is not None:
                money.add(tx)
        page.append(_line(name, tx))
        if len(page) >= PAGE:
            await _upsert(core, page)
            page = []
    if page:
        await _upsert(core, page)
    if core.engine.dialect.name == "postgresql":
        # Freshly staged: without statistics the planner takes the day's rows for none and joins
        # each of our top-ups against all of them (seconds a page at 100,000 rows).
        async with core.transaction() as session:
            await session.execute(text("ANALYZE recon_line"))
    return within


def _line(name: str, tx: ProviderTransaction) -> dict[str, Any]:
    return {
        "provider": name,
        "provider_ref": tx.provider_ref,
        "reference": tx.reference,
        "outcome": str(tx.outcome),
        "amount_minor": tx.delivered_minor,
        "currency": tx.currency[:3],
        "operator_ref": tx.operator_ref,
        "at": tx.at,
    }


async def _upsert(core: Core, rows: Sequence[dict[str, Any]]) -> None:
    dialect = postgresql if core.engine.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(line_t)
    changing = ("reference", "outcome", "amount_minor", "currency", "operator_ref", "at")
    stmt = stmt.on_conflict_do_update(
        index_elements=["provider", "provider_ref"],
        set_={name: stmt.excluded[name] for name in changing},
    )
    async with core.transaction() as session:
        await session.execute(stmt, list(rows))
