"""``airgate reconcile --date D``: a local day against the aggregator's transaction report."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich import box
from rich.table import Table

from airgate.cli._run import JsonOpt, emit, fail, out, run
from airgate.cli.cases import _queue
from core.context import Core
from core.logging import configure
from core.money import format_minor
from core.services.notify import Message
from core.services.reconcile import MISMATCHES, Report, reconcile_all
from core.services.requests.messages import enqueue


def _day(text: str | None, zone: str) -> date:
    if text is None:  # yesterday, where the business is
        return (datetime.now(ZoneInfo(zone)) - timedelta(days=1)).date()
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"--date {text!r}: expected YYYY-MM-DD")


def reconcile_command(
    day: Annotated[
        str | None, typer.Option("--date", help="The local day, YYYY-MM-DD (default: yesterday).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Match a day's top-ups with each aggregator account's report; settle ours still open from
    its record, open a support case for every other mismatch. Running it again changes nothing."""

    configure(level="WARNING", json=False)  # stdout is the report; the worker's job logs it

    async def work(core: Core) -> tuple[list[Report], str]:
        wanted = _day(day, core.settings.timezone)
        async with _queue(core) as queue:

            async def outbox(owed: Sequence[Message]) -> None:
                await enqueue(queue, owed)

            reports = await reconcile_all(core, day=wanted, outbox=outbox)
        return reports, core.settings.timezone

    reports, zone = run(work)

    def human() -> None:
        for report in reports:
            _print(report, zone)

    emit([r.as_json() for r in reports], as_json=as_json, human=human)


def _print(report: Report, zone: str) -> None:
    out.print(
        f"{report.provider}, {report.day.isoformat()} ({zone}): {report.pulled} of its "
        f"transactions, {report.ours} of our top-ups"
    )
    table = Table(box=box.SIMPLE, pad_edge=False)
    for name in ("class", "count", "amount", "at stake"):
        table.add_column(name, justify="left" if name == "class" else "right")
    for kind, tally in report.classes.items():
        stake = format_minor(tally.at_stake_minor) if kind in MISMATCHES else ""
        table.add_row(kind, f"{tally.count:,}", format_minor(tally.amount_minor), stake)
    out.print(table)
    money = report.money
    out.print(_money_line(report))
    out.print(
        f"money at stake {format_minor(report.at_stake_minor)}"
        + (
            f", and {format_minor(money.at_stake_minor)} in what it charged"
            if money.at_stake_minor
            else ""
        )
        + f"; {report.settled} settled from the aggregator's record; {report.cases_opened} "
        "support case(s) opened or given evidence (airgate case list)"
    )


def _money_line(report: Report) -> str:
    money = report.money
    if money.charged_rows:
        charged = (
            f"it charged {format_minor(money.charged_minor)} for {money.charged_rows:,} "
            f"delivered, we expected {format_minor(money.priced_minor)} for {money.delivered:,} "
            f"at {money.price_bps} bps"
        )
        if money.at_stake_minor:
            charged += f": DIFFERS by {format_minor(money.difference_minor)}"
        else:
            charged += ": agrees"
    else:
        charged = "its report gives no charges"
    if money.credits_minor is None:
        credits = "no balance chain in its report"
    else:
        credits = f"credits seen in its balance {format_minor(money.credits_minor)}"
        if money.debits_minor:
            credits += f" (and {format_minor(money.debits_minor)} taken outside the report)"
    return f"money: {charged}; {credits}; our stock intake {format_minor(money.intake_minor)}"
