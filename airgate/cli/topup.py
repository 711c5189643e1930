"""``airgate topup …`` (send, show, list) and ``airgate worker``."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich import box
from rich.table import Column, Table
from sqlalchemy import select
from sqlmodel import col

from airgate.cli._run import (
    CLI_POOL,
    JsonOpt,
    aggregator_url,
    amount,
    emit,
    fail,
    out,
    read_pin,
    run,
    run_async,
    settings,
)
from airgate.cli.party import PartyArg
from core.context import Core, open_core
from core.db import ensure_migrated
from core.errors import AirGateError, InputError, NotFound, RepeatNeedsConfirmation
from core.jobs.queue import JobQueue
from core.logging import configure, secrets_of
from core.models import Party, Topup
from core.money import format_minor
from core.redis import redis_for
from core.security import Pin
from core.services import parties
from core.services.topups import confirm_topup

app = typer.Typer(no_args_is_help=True, help="Top-ups: send one, look one up, list them.")


def _row(topup: Topup) -> dict[str, Any]:
    return {
        "id": topup.id,
        "state": topup.state,
        "msisdn": topup.msisdn,
        "product": topup.product_code,
        "amount_minor": topup.amount_minor,
        "currency": topup.currency,
        "party_id": topup.party_id,
        "sends": topup.sends,
        "checks": topup.checks,
        "created_at": topup.created_at.isoformat(),
        "final_at": topup.final_at.isoformat() if topup.final_at else None,
        "detail": topup.detail,
    }


def _pin_asked_once(*, from_stdin: bool) -> Pin:
    """The retailer's PIN for this one top-up: asked once, not confirmed. It is checked against the
    stored hash, so a typo is refused (and counts as a wrong attempt) rather than kept, unlike the
    confirmed prompt that sets a new PIN."""
    if from_stdin or not sys.stdin.isatty():
        return read_pin(from_stdin=True)
    try:
        return Pin(typer.prompt("PIN", hide_input=True))
    except AirGateError as exc:
        fail(str(exc))


def _repeat_refused(exc: RepeatNeedsConfirmation) -> InputError:
    """The guard's words for a person at the command line: how to confirm is ``--repeat``."""
    f = exc.fields
    shown = format_minor(f["amount_minor"], f.get("currency", ""))
    return InputError(
        reason=f"the same top-up ({shown} to {f['msisdn']}) was made {f['seconds_ago']} s ago; "
        "add --repeat to send it again"
    )


@app.command("send")
def send(
    retailer: PartyArg,
    number: Annotated[str, typer.Argument(help="The customer's number, local or international.")],
    face: Annotated[str | None, typer.Argument(help="Airtime amount in major units.")] = None,
    bundle: Annotated[
        str | None, typer.Option(help="A bundle's product code instead of an amount.")
    ] = None,
    repeat: Annotated[
        bool, typer.Option("--repeat", help="Confirm the same top-up again within 2 minutes.")
    ] = False,
    pin_stdin: Annotated[
        bool, typer.Option("--pin-stdin", help="Read the PIN from stdin.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Top up a customer as RETAILER (its PIN is asked); the worker delivers it."""
    if (face is None) == (bundle is None):
        fail("give either an airtime AMOUNT or --bundle CODE")
    amount_minor = amount(face) if face is not None else None
    pin = _pin_asked_once(from_stdin=pin_stdin)

    async def work(core: Core) -> Topup:
        async with core.sessions() as session:
            party = await parties.get_party(session, retailer, country=core.settings.country)
        await parties.check_pin(core, party_id=party.id or 0, pin=pin, channel="cli")
        s = core.settings
        async with redis_for(configured=s.redis_url, var_dir=s.var_dir) as url:
            queue = await JobQueue.connect(s.queue_redis_url or url)
            try:
                return await confirm_topup(
                    core,
                    queue,
                    party_id=party.id or 0,
                    msisdn=number,
                    product_code=bundle,
                    amount_minor=amount_minor,
                    channel="cli",
                    confirm_repeat=repeat,
                )
            except RepeatNeedsConfirmation as exc:
                raise _repeat_refused(exc) from None
            finally:
                await queue.close()

    topup = run(work)
    emit(
        _row(topup),
        as_json=as_json,
        human=lambda: out.print(
            f"top-up {topup.id}: {format_minor(topup.amount_minor, topup.currency)} to "
            f"{topup.msisdn} reserved; the worker delivers it (airgate topup show {topup.id})",
            soft_wrap=True,  # one line, so the command in it can be copied
        ),
    )


def zone_name(zone: str) -> str:
    """How a table names ``zone``: its abbreviation ("EAT"), or the IANA name where the
    abbreviation is only an offset ("+04")."""
    abbreviation = datetime.now(ZoneInfo(zone)).tzname() or ""
    return abbreviation if abbreviation.isalpha() else zone


def local(at: datetime, zone: str, *, seconds: bool = False) -> str:
    return f"{at.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M{':%S' if seconds else ''}}"


def _product(topup: Topup) -> str:
    """``airtime``, or the bundle's code: the operator is named elsewhere."""
    return topup.product_code.removeprefix(f"{topup.operator_code}:")


@app.command("show")
def show(topup_id: str, as_json: JsonOpt = False) -> None:
    """One top-up and where it stands."""

    async def work(core: Core) -> tuple[Topup, Party | None, str]:
        async with core.sessions() as session:
            topup = await session.get(Topup, topup_id)
            if topup is None:
                raise NotFound(kind="top-up", key=topup_id)
            return topup, await session.get(Party, topup.party_id), core.settings.timezone

    topup, retailer, zone = run(work)
    emit(_row(topup), as_json=as_json, human=lambda: _print_topup(topup, retailer, zone))


def _print_topup(topup: Topup, retailer: Party | None, zone: str) -> None:
    """A person's view: words for the fields, the amount with its currency, local times, and
    nothing for what has not happened."""

    def at(when: datetime | None) -> str | None:
        return None if when is None else f"{local(when, zone, seconds=True)} {zone_name(zone)}"

    lines = {
        "top-up": topup.id,
        "state": topup.state,
        "to": f"{topup.msisdn} ({topup.operator_code})",
        "what": f"{format_minor(topup.amount_minor, topup.currency)} {_product(topup)}",
        "retailer": retailer.label if retailer else f"#{topup.party_id}",
        "channel": topup.channel,
        "sent": f"{topup.sends} time(s) to the aggregator" if topup.sends else None,
        "checked": f"{topup.checks} status query(ies)" if topup.checks else None,
        "created": at(topup.created_at),
        "unknown since": at(topup.unknown_since),
        "finished": at(topup.final_at),
        "operator ref": topup.operator_txn_id,
        "detail": topup.detail,
    }
    for label, value in lines.items():
        if value:
            out.print(f"{label:<13} {value}", soft_wrap=True)


@app.command("list")
def list_topups(
    state: Annotated[str | None, typer.Option(help="Only this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The latest top-ups, newest first."""

    async def work(core: Core) -> tuple[list[Topup], str]:
        query = select(Topup).order_by(col(Topup.created_at).desc()).limit(limit)
        if state:
            query = query.where(col(Topup.state) == state)
        async with core.sessions() as session:
            return list((await session.execute(query)).scalars()), core.settings.timezone

    rows, zone = run(work)
    emit([_row(t) for t in rows], as_json=as_json, human=lambda: _print_list(rows, zone))


def _print_list(rows: list[Topup], zone: str) -> None:
    """One line a top-up in 80 columns: no borders, one space between columns; what a person
    copies (the id, the number) and the time are never cut, the product folds."""
    table = Table(
        Column("id", no_wrap=True),
        Column("state", no_wrap=True),
        Column("number", no_wrap=True),
        Column("product", overflow="fold"),
        Column("amount", no_wrap=True, justify="right"),
        Column(f"created ({zone_name(zone)})", no_wrap=True),
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=0,
    )
    for t in rows:
        table.add_row(
            t.id,
            t.state,
            t.msisdn,
            _product(t),
            format_minor(t.amount_minor, t.currency),
            local(t.created_at, zone),
        )
    out.print(table)


def worker(
    burst: Annotated[
        bool, typer.Option("--burst", help="Stop when the queue is empty (scripts, tests).")
    ] = False,
) -> None:
    """Deliver top-ups, resolve unknown outcomes, send notifications, run the sweeper."""
    s = settings()
    configure(level=s.log_level, json=s.log_json, secrets=secrets_of(s))

    async def main() -> None:
        from core.worker import build_worker, run_worker  # only the worker pays for them

        async with open_core(s.model_copy(update=CLI_POOL)) as core:  # one connection, closed
            await ensure_migrated(core.engine)
        async with redis_for(configured=s.redis_url, var_dir=s.var_dir) as url:
            where, _setting = aggregator_url(s)
            out.print(f"worker: {s.provider} at {where}, {s.worker_max_jobs} concurrent jobs")
            await run_worker(build_worker(s, redis_url=url, burst=burst))

    run_async(main())
