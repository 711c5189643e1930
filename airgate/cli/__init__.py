"""The ``airgate`` command: typer app assembled from one module per concern."""

from __future__ import annotations

import typer

from airgate.cli import (
    agreement,
    apikey,
    bot,
    callback,
    cases,
    db,
    money,
    party,
    phone,
    provider,
    reconcile,
    reports,
    sandbox,
    settle,
    topup,
)
from airgate.cli import run as running

app = typer.Typer(
    no_args_is_help=True,
    help="AirGate: a B2B airtime top-up gateway. Settings come from AIRGATE_* variables.",
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
app.add_typer(party.app, name="party")
app.add_typer(agreement.app, name="agreement")
app.add_typer(money.stock_app, name="stock")
app.add_typer(money.ledger_app, name="ledger")
app.add_typer(running.catalog_app, name="catalog")
app.add_typer(topup.app, name="topup")
app.add_typer(callback.app, name="callback")
app.add_typer(apikey.app, name="apikey")
app.add_typer(reports.report_app, name="report")
app.command("statement")(reports.statement_command)
app.add_typer(cases.app, name="case")
app.add_typer(settle.app, name="settle")
app.command("reconcile")(reconcile.reconcile_command)
app.add_typer(provider.app, name="provider")
app.command("deposit")(money.deposit)
app.command("balance")(money.balance)
app.command("seed")(running.seed)
app.command("serve")(running.serve)
app.command("demo")(running.demo)
app.command("phone")(phone.phone)
app.command("bot")(bot.bot)
party.app.command("invite")(bot.invite)
app.command("sandbox")(sandbox.sandbox)
app.command("worker")(topup.worker)


def main() -> None:
    app()
