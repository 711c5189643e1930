"""``airgate party``: register and manage parties."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from airgate.cli._run import JsonOpt, emit, fail, out, read_pin, run
from core.context import Core
from core.errors import NotPermitted
from core.models import Party, PartyStatus, Role
from core.money import format_minor, parse_major
from core.services import alerts, parties, stock, tags
from core.services.audit import Actor

app = typer.Typer(no_args_is_help=True, help="Parties: the platform, distributors, retailers.")
PartyArg = Annotated[str, typer.Argument(help="Phone number (any format) or #id.")]


def party_dict(party: Party) -> dict[str, Any]:
    """What may be shown of a party: never its PIN hash."""
    return {
        "id": party.id,
        "role": party.role,
        "name": party.name,
        "msisdn": party.msisdn,
        "parent_id": party.parent_id,
        "status": party.status,
        "language": party.language,
        "pin_set": party.pin_hash is not None,
        "pin_locked": party.pin_locked,
        "pin_failed_attempts": party.pin_failed_attempts,
        "credit_limit_minor": party.credit_limit_minor,
    }


def _print_party(party: Party) -> None:
    locked = " [bold red]PIN LOCKED[/]" if party.pin_locked else ""
    out.print(f"#{party.id} {party.role} {party.name} {party.msisdn} {party.status}{locked}")


@app.command("add")
def add(
    role: Annotated[Role, typer.Option(help="platform, distributor or retailer")],
    name: Annotated[str, typer.Option()],
    msisdn: Annotated[str, typer.Option(help="Phone number, local or international.")],
    parent: Annotated[str | None, typer.Option(help="The parent's number or #id.")] = None,
    language: Annotated[str, typer.Option(help="en, fr or sw")] = "en",
    pin_stdin: Annotated[bool, typer.Option(help="Read the PIN from stdin.")] = False,
    no_pin: Annotated[bool, typer.Option(help="Register without a PIN.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Register a party."""
    pin = None if no_pin else read_pin(from_stdin=pin_stdin)

    async def work(core: Core) -> Party:
        return await parties.add_party(
            core,
            actor=Actor.cli(),
            role=role,
            name=name,
            msisdn=msisdn,
            parent_ref=parent,
            language=language,
            pin=pin,
        )

    party = run(work)
    emit(party_dict(party), as_json=as_json, human=lambda: _print_party(party))


@app.command("list")
def list_(
    role: Annotated[Role | None, typer.Option()] = None,
    parent: Annotated[str | None, typer.Option(help="Only the parties under this one.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: JsonOpt = False,
) -> None:
    """List parties."""

    async def work(core: Core) -> list[Party]:
        async with core.sessions() as session:
            parent_id = None
            if parent is not None:
                parent_id = (
                    await parties.get_party(session, parent, country=core.settings.country)
                ).id
            return await parties.list_parties(
                session, role=role, parent_id=parent_id, limit=limit, offset=offset
            )

    rows = run(work)

    def human() -> None:
        table = Table("id", "role", "name", "msisdn", "parent", "status", "PIN")
        for p in rows:
            pin = "locked" if p.pin_locked else ("set" if p.pin_hash else "none")
            table.add_row(
                str(p.id), p.role, p.name, p.msisdn, str(p.parent_id or ""), p.status, pin
            )
        out.print(table)

    emit([party_dict(p) for p in rows], as_json=as_json, human=human)


@app.command("show")
def show(party: PartyArg, as_json: JsonOpt = False) -> None:
    """Show a party and its balances."""

    async def work(core: Core) -> stock.Balance:
        return await stock.balance(core, ref=party)

    bal = run(work)

    def human() -> None:
        _print_party(bal.party)
        print_balance(bal)

    emit(
        {**party_dict(bal.party), "stock": bal.stock, "cash": bal.cash},
        as_json=as_json,
        human=human,
    )


def print_balance(bal: stock.Balance) -> None:
    table = Table("stock", "available", "reserved", "sold")
    for operator, row in bal.stock.items():
        table.add_row(operator, *(format_minor(row[k]) for k in ("available", "reserved", "sold")))
    out.print(table)
    for currency, row in bal.cash.items():
        used = row["credit_limit"] - row["credit_available"]
        out.print(
            f"cash {format_minor(row['cash'], currency)}; credit limit "
            f"{format_minor(row['credit_limit'], currency)}, in use {format_minor(used, currency)}"
        )


def _status_command(name: str, status: PartyStatus, doc: str) -> None:
    def command(party: PartyArg, as_json: JsonOpt = False) -> None:
        async def work(core: Core) -> Party:
            return await parties.set_status(core, actor=Actor.cli(), ref=party, status=status)

        changed = run(work)
        emit(party_dict(changed), as_json=as_json, human=lambda: _print_party(changed))

    command.__doc__ = doc
    app.command(name)(command)


_status_command(
    "suspend", PartyStatus.SUSPENDED, "Suspend a party: it can do nothing until activated."
)
_status_command("activate", PartyStatus.ACTIVE, "Activate a pending or suspended party.")


@app.command("unlock")
def unlock(party: PartyArg, as_json: JsonOpt = False) -> None:
    """Unlock a PIN locked after too many wrong tries."""

    async def work(core: Core) -> Party:
        return await parties.unlock(core, actor=Actor.cli(), ref=party)

    changed = run(work)
    emit(
        party_dict(changed),
        as_json=as_json,
        human=lambda: out.print(
            f"unlocked the PIN of {changed.label}: it can be used again, wrong tries reset to 0"
        ),
    )


@app.command("set-pin")
def set_pin(
    party: PartyArg,
    pin_stdin: Annotated[bool, typer.Option(help="Read the PIN from stdin.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Set a party's PIN (prompted, or read from stdin); clears a lock."""
    pin = read_pin(from_stdin=pin_stdin)

    async def work(core: Core) -> Party:
        return await parties.set_pin(core, actor=Actor.cli(), ref=party, pin=pin)

    changed = run(work)
    emit(party_dict(changed), as_json=as_json, human=lambda: _print_party(changed))


@app.command("credit-limit")
def credit_limit(
    party: PartyArg,
    limit: Annotated[
        str, typer.Argument(help="New limit in major units, e.g. 5000; 0 removes it.")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Set how much a party may owe its parent for stock."""
    try:
        limit_minor = parse_major(limit)
    except ValueError as exc:
        fail(str(exc))

    async def work(core: Core) -> Party:
        async with core.sessions() as session:
            buyer = await parties.get_party(session, party, country=core.settings.country)
        if buyer.parent_id is None:
            raise NotPermitted(reason=f"{buyer.label} has no parent to owe credit to")
        await stock.set_credit_limit(
            core,
            actor=Actor.cli(),
            seller_ref=buyer.parent_id or 0,
            buyer_ref=buyer.id or 0,
            limit_minor=limit_minor,
        )
        async with core.sessions() as session:
            return await parties.get_party(session, buyer.id or 0, country=core.settings.country)

    changed = run(work)
    emit(party_dict(changed), as_json=as_json, human=lambda: _print_party(changed))


@app.command("low-stock")
def low_stock(
    party: PartyArg,
    amount: Annotated[
        str,
        typer.Argument(
            help="Alert below this much of an operator's stock, in major units (e.g. 500), "
            "or 'default' for AIRGATE_LOW_STOCK_MINOR."
        ),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Set a party's own low-stock threshold: it is told once when its stock falls below it."""
    threshold_minor: int | None = None
    if amount.strip().lower() != "default":
        try:
            threshold_minor = parse_major(amount)
        except ValueError as exc:
            fail(str(exc))

    async def work(core: Core) -> tuple[Party, int]:
        changed = await alerts.set_threshold(
            core, actor=Actor.cli(), ref=party, threshold_minor=threshold_minor
        )
        return changed, alerts.threshold_of(core, changed.low_stock_minor)

    changed, effective_minor = run(work)

    def human() -> None:
        source = "its own" if changed.low_stock_minor is not None else "the default"
        out.print(
            f"#{changed.id} {changed.name}: low-stock alert below "
            f"{format_minor(effective_minor)} of an operator's stock ({source})"
        )

    data = {
        **party_dict(changed),
        "low_stock_minor": changed.low_stock_minor,
        "effective_low_stock_minor": effective_minor,
    }
    emit(data, as_json=as_json, human=human)


@app.command("region")
def region(
    party: PartyArg,
    name: Annotated[str, typer.Argument(help="The region (e.g. nairobi), or 'none'.")],
    as_json: JsonOpt = False,
) -> None:
    """Set a party's region: a broadcast can go to a region's retailers."""
    value = None if name.strip().lower() == "none" else name

    async def work(core: Core) -> Party:
        return await tags.set_region(core, actor=Actor.cli(), ref=party, region=value)

    changed = run(work)
    emit(
        {**party_dict(changed), "region": changed.region},
        as_json=as_json,
        human=lambda: out.print(f"#{changed.id} {changed.name}: region {changed.region or '-'}"),
    )


@app.command("tag")
def tag(
    party: PartyArg,
    add: Annotated[
        list[str] | None, typer.Argument(help="Tags to add (e.g. kiosk route-7).")
    ] = None,
    remove: Annotated[
        list[str] | None, typer.Option("--remove", "-r", help="A tag to remove (repeatable).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add or remove a party's tags: a broadcast can go to the retailers with a tag."""

    async def work(core: Core) -> tuple[Party, list[str]]:
        return await tags.retag(
            core, actor=Actor.cli(), ref=party, add=add or [], remove=remove or []
        )

    changed, now = run(work)
    emit(
        {**party_dict(changed), "tags": now},
        as_json=as_json,
        human=lambda: out.print(f"#{changed.id} {changed.name}: tags {' '.join(now) or '-'}"),
    )
