"""``airgate agreement``: discounts between a seller and its direct buyers."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from airgate.cli._run import JsonOpt, emit, fail, out, run
from airgate.cli.party import PartyArg
from core.context import Core
from core.errors import NotPermitted
from core.models import Agreement
from core.models.catalog import ALL_OPERATORS
from core.services import catalog, parties
from core.services.audit import Actor

app = typer.Typer(no_args_is_help=True, help="Discount agreements between levels.")


def _dict(agreement: Agreement) -> dict[str, Any]:
    return agreement.model_dump()


@app.command("set")
def set_(
    buyer: PartyArg,
    discount_bps: Annotated[int, typer.Option(min=0, max=10_000, help="250 = 2.5 %.")],
    operator: Annotated[str, typer.Option(help="An operator code, or * for all.")] = ALL_OPERATORS,
    commission_bps: Annotated[int | None, typer.Option(min=0, max=10_000)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Set the discount a buyer gets from its parent (per operator, or for all)."""

    async def work(core: Core) -> Agreement:
        async with core.sessions() as session:
            party = await parties.get_party(session, buyer, country=core.settings.country)
        if party.parent_id is None or party.id is None:
            raise NotPermitted(reason=f"{party.label} has no seller above it")
        return await catalog.set_agreement(
            core,
            actor=Actor.cli(),
            seller_id=party.parent_id,
            buyer_id=party.id,
            operator_code=operator,
            discount_bps=discount_bps,
            commission_bps=commission_bps,
        )

    agreement = run(work)
    emit(
        _dict(agreement),
        as_json=as_json,
        human=lambda: out.print(
            f"party #{agreement.buyer_id} buys {agreement.operator_code} from "
            f"#{agreement.seller_id} at {agreement.discount_bps} bps off"
        ),
    )


@app.command("list")
def list_(party: PartyArg, as_json: JsonOpt = False) -> None:
    """The agreements where PARTY sells or buys."""

    async def work(core: Core) -> list[Agreement]:
        async with core.sessions() as session:
            found = await parties.get_party(session, party, country=core.settings.country)
            return await catalog.agreements_of(session, party_id=found.id or 0)

    rows = run(work)
    if not rows and not as_json:
        fail("no agreements: sales are at face value")

    def human() -> None:
        table = Table("seller", "buyer", "operator", "discount bps", "commission bps")
        for a in rows:
            table.add_row(
                f"#{a.seller_id}",
                f"#{a.buyer_id}",
                a.operator_code,
                str(a.discount_bps),
                str(a.commission_bps or ""),
            )
        out.print(table)

    emit([_dict(a) for a in rows], as_json=as_json, human=human)
