"""``airgate statement`` and ``airgate report daily``: read-only documents, printed or as CSV."""

from __future__ import annotations

import sys
from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.table import Table

from airgate.cli._run import fail, out, run
from airgate.cli.party import PartyArg
from core.context import Core
from core.services import parties, statement
from core.services.daily import render
from core.services.daily.detail import detail
from core.services.daily.figures import Detail, PartyDay, everyone

report_app = typer.Typer(no_args_is_help=True, help="Reports: the daily report.")
CsvOpt = Annotated[bool, typer.Option("--csv", help="Print CSV for a spreadsheet.")]


def _date(text: str | None, *, zone: str) -> date:
    if text is None:
        return datetime.now(ZoneInfo(zone)).date()
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"{text!r} is not a date (YYYY-MM-DD)")


async def party_id_of(core: Core, ref: str) -> int:
    async with core.sessions() as session:
        party = await parties.get_party(session, ref, country=core.settings.country)
    return party.id or 0


def statement_command(
    party: PartyArg,
    first: Annotated[str, typer.Option("--from", help="First local day, YYYY-MM-DD.")],
    last: Annotated[str, typer.Option("--to", help="Last local day, YYYY-MM-DD (included).")],
    as_csv: CsvOpt = False,
) -> None:
    """Every movement of a party's stock and cash between two local days, with running balances
    (the same document as the Telegram /statement)."""

    async def work(core: Core) -> tuple[statement.Statement, str]:
        zone = core.settings.timezone
        start, end = _date(first, zone=zone), _date(last, zone=zone)
        if end < start:
            fail("--to is before --from")
        doc = await statement.for_days(
            core, party_id=await party_id_of(core, party), first=start, last=end
        )
        return doc, zone

    doc, zone = run(work)
    if as_csv:
        sys.stdout.buffer.write(statement.as_csv(doc, zone=zone))
        return
    table = Table("date", "time", "kind", "asset", "amount", "balance", "reference")
    local = ZoneInfo(zone)
    for line in doc.lines:
        at = line.move.at.astimezone(local)
        table.add_row(
            f"{at:%Y-%m-%d}", f"{at:%H:%M:%S}", line.move.kind, line.move.asset,
            render.major(line.move.amount_minor), render.major(line.balance_minor),
            line.move.reference or "",
        )  # fmt: skip
    out.print(table)
    opening = ", ".join(f"{a} {render.major(v)}" for a, v in sorted(doc.opening.items()))
    closing = ", ".join(f"{a} {render.major(v)}" for a, v in sorted(doc.closing.items()))
    out.print(f"opening: {opening or 'nothing'}", soft_wrap=True)
    out.print(f"closing: {closing or 'nothing'}", soft_wrap=True)


@report_app.command("daily")
def daily(
    day: Annotated[
        str | None, typer.Option("--date", help="Local day, YYYY-MM-DD (default: today).")
    ] = None,
    party: Annotated[str | None, typer.Option(help="One party (number or #id).")] = None,
    as_csv: CsvOpt = False,
) -> None:
    """A local day's figures: every party's, or one party's report in full."""

    async def work(core: Core) -> list[PartyDay] | Detail:
        when = _date(day, zone=core.settings.timezone)
        if party is None:
            return await everyone(core, day=when)
        return await detail(core, day=when, party_id=await party_id_of(core, party))

    result = run(work)
    if isinstance(result, list):
        if as_csv:
            sys.stdout.buffer.write(render.everyone_csv(result))
            return
        _print_everyone(result)
    elif as_csv:
        sys.stdout.buffer.write(render.detail_csv(result))
    else:
        _print_detail(result)


def _print_everyone(days: list[PartyDay]) -> None:
    """Within 80 columns: the CSV (``--csv``) has every figure and the numbers."""
    table = Table("party", "done", "value", "failed", "open", "margin", "bought", "on credit")
    for d in days:
        table.add_row(
            f"{d.name} ({d.role[0].upper()})", str(d.delivered), render.major(d.delivered_minor),
            str(d.failed), str(d.open), render.major(d.margin_minor),
            render.major(d.bought_face_minor), render.major(d.credit_used_minor),
        )  # fmt: skip
    out.print(table)


def _print_detail(report: Detail) -> None:
    out.print(render.summary(report, "en"), soft_wrap=True)
    products = Table("operator", "product", "delivered", "value", "failed", "pending")
    for p in report.products:
        products.add_row(
            p.operator, p.product, str(p.delivered), render.major(p.delivered_minor),
            str(p.failed), str(p.open),
        )  # fmt: skip
    out.print(products)
    if report.retailers:
        ranked = Table("rank", "retailer", "delivered", "value", "lowest stock", "low")
        for rank, r in enumerate(report.retailers, 1):
            lowest = "" if r.lowest_stock_minor is None else render.major(r.lowest_stock_minor)
            ranked.add_row(
                str(rank), f"{r.name} ({r.msisdn})", str(r.delivered),
                render.major(r.delivered_minor), lowest, "LOW" if r.low else "",
            )  # fmt: skip
        out.print(ranked)
