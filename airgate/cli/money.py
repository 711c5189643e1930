"""``airgate stock …``, ``airgate deposit``, ``airgate balance``, ``airgate ledger verify``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated

import typer
from rich.table import Table

from airgate.cli._run import JsonOpt, amount, emit, fail, out, run
from airgate.cli.party import PartyArg, print_balance
from core.context import Core
from core.money import format_minor
from core.services import parties, stock
from core.services.audit import Actor
from core.services.catalog import get_operator
from core.services.verify import VerifyReport
from core.services.verify import verify as verify_snapshot

stock_app = typer.Typer(no_args_is_help=True, help="Stock: intake, sell, claw back.")
ledger_app = typer.Typer(no_args_is_help=True, help="The ledger.")
FromOpt = Annotated[
    str | None, typer.Option("--from", help="The seller (default: the buyer's parent).")
]
KeyOpt = Annotated[str | None, typer.Option(help="Idempotency key: the same key twice sells once.")]


async def _seller(core: Core, buyer: str, seller: str | None) -> str | int:
    if seller is not None:
        return seller
    async with core.sessions() as session:
        party = await parties.get_party(session, buyer, country=core.settings.country)
    return party.parent_id or buyer


@dataclass(frozen=True)
class _Between:
    """Who and what a stock movement was between, in words."""

    seller: str
    buyer: str
    operator: str
    currency: str


async def _between(core: Core, *, seller: str | int, buyer: str, operator: str) -> _Between:
    country = core.settings.country
    async with core.sessions() as session:
        who = [await parties.get_party(session, ref, country=country) for ref in (seller, buyer)]
        found = await get_operator(session, operator)
    return _Between(who[0].label, who[1].label, found.name, found.currency)


def _print_price(receipt: stock.Receipt, currency: str) -> None:
    if receipt.price_minor:
        out.print(
            f"  price {format_minor(receipt.price_minor, currency)}: "
            f"cash {format_minor(receipt.cash_minor, currency)}, "
            f"credit {format_minor(receipt.credit_minor, currency)}"
        )


def _print_movement(verb: str, receipt: stock.Receipt, between: _Between) -> None:
    """``sold KES 1,000 of Safaricom stock to … from …``, then the price and the reference."""
    again = " (already recorded; nothing changed)" if receipt.replayed else ""
    face = format_minor(receipt.face_minor, between.currency)
    to_from = ("to", "from") if verb == "sold" else ("from", "back to")
    out.print(
        f"{verb} {face} of {between.operator} stock {to_from[0]} {between.buyer}, "
        f"{to_from[1]} {between.seller}{again}",
        soft_wrap=True,
    )
    _print_price(receipt, between.currency)
    out.print(f"  reference {receipt.reference}")


@stock_app.command("intake")
def intake(
    operator: Annotated[str, typer.Argument(help="Operator code, e.g. safaricom-ke.")],
    face: Annotated[str, typer.Argument(help="Face value in major units.")],
    reference: Annotated[str, typer.Option(help="The operator's purchase reference.")],
    as_json: JsonOpt = False,
) -> None:
    """Record airtime bought from the operator into the platform's stock."""
    face_minor = amount(face)

    async def work(core: Core) -> stock.Receipt:
        return await stock.intake(
            core,
            actor=Actor.cli(),
            operator_code=operator,
            amount_minor=face_minor,
            reference=reference,
        )

    receipt = run(work)
    emit(asdict(receipt), as_json=as_json, human=lambda: out.print(f"intake {receipt.reference}"))


@stock_app.command("sell")
def sell(
    buyer: PartyArg,
    operator: Annotated[str, typer.Argument(help="Operator code, e.g. safaricom-ke.")],
    face: Annotated[str, typer.Argument(help="Face value of the stock in major units.")],
    seller: FromOpt = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sell stock to a retailer (or sub-distributor) at the agreed discount."""
    face_minor = amount(face)

    async def work(core: Core) -> tuple[stock.Receipt, _Between]:
        seller_ref = await _seller(core, buyer, seller)
        receipt = await stock.sell(
            core,
            actor=Actor.cli(),
            seller_ref=seller_ref,
            buyer_ref=buyer,
            operator_code=operator,
            face_minor=face_minor,
            key=key,
        )
        return receipt, await _between(core, seller=seller_ref, buyer=buyer, operator=operator)

    receipt, between = run(work)
    emit(asdict(receipt), as_json=as_json, human=lambda: _print_movement("sold", receipt, between))


@stock_app.command("clawback")
def clawback(
    buyer: PartyArg,
    operator: Annotated[str, typer.Argument()],
    face: Annotated[str, typer.Argument(help="Face value to take back, in major units.")],
    reason: Annotated[str, typer.Option(help="Why; kept on the transfer and in the audit log.")],
    seller: FromOpt = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Take stock back from a retailer."""
    face_minor = amount(face)

    async def work(core: Core) -> tuple[stock.Receipt, _Between]:
        seller_ref = await _seller(core, buyer, seller)
        receipt = await stock.clawback(
            core,
            actor=Actor.cli(),
            seller_ref=seller_ref,
            buyer_ref=buyer,
            operator_code=operator,
            amount_minor=face_minor,
            reason=reason,
            key=key,
        )
        return receipt, await _between(core, seller=seller_ref, buyer=buyer, operator=operator)

    receipt, between = run(work)
    emit(
        asdict(receipt),
        as_json=as_json,
        human=lambda: _print_movement("took back", receipt, between),
    )


def deposit(
    payer: PartyArg,
    cash: Annotated[str, typer.Argument(help="Amount in major units.")],
    reference: Annotated[str, typer.Option(help="The payment's reference; unique per receiver.")],
    receiver: Annotated[
        str | None, typer.Option("--to", help="Who received it (default: the payer's parent).")
    ] = None,
    currency: Annotated[str, typer.Option()] = "KES",
    as_json: JsonOpt = False,
) -> None:
    """Record a cash deposit a retailer made with its distributor (repays credit first)."""
    cash_minor = amount(cash)

    async def work(core: Core) -> stock.Receipt:
        return await stock.deposit(
            core,
            actor=Actor.cli(),
            receiver_ref=await _seller(core, payer, receiver),
            payer_ref=payer,
            amount_minor=cash_minor,
            reference=reference,
            currency=currency.upper(),
        )

    receipt = run(work)

    def human() -> None:
        out.print(f"deposit {receipt.reference}: {format_minor(receipt.price_minor, currency)}")
        if receipt.credit_minor:
            out.print(f"  repaid credit {format_minor(receipt.credit_minor, currency)}")

    emit(asdict(receipt), as_json=as_json, human=human)


def balance(party: PartyArg, as_json: JsonOpt = False) -> None:
    """A party's stock per operator and its cash and credit."""

    async def work(core: Core) -> stock.Balance:
        return await stock.balance(core, ref=party)

    bal = run(work)
    emit(
        {"party": bal.party.msisdn, "stock": bal.stock, "cash": bal.cash},
        as_json=as_json,
        human=lambda: print_balance(bal),
    )


@ledger_app.command("verify")
def verify(as_json: JsonOpt = False) -> None:
    """Recompute every balance from the transfers; exit 0 only if every invariant holds."""

    async def work(core: Core) -> VerifyReport:
        return await verify_snapshot(core.engine)

    report = run(work)

    def human() -> None:
        table = Table("asset", "sum of balances")
        for asset, total in report.assets.items():
            table.add_row(asset, str(total))
        out.print(table)
        out.print(f"{report.accounts} accounts, {report.transfers} transfers")
        for problem in report.problems:
            out.print(f"[red]PROBLEM[/] {problem}")
        out.print("[green]ledger OK[/]" if report.ok else "[red]ledger NOT OK[/]")

    emit({**asdict(report), "ok": report.ok}, as_json=as_json, human=human)
    if not report.ok:
        fail(f"{len(report.problems)} problem(s) in the ledger")
