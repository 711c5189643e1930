"""A party's own position: its balance, and its statement for a period (JSON or CSV)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import Field, model_validator

from api.endpoint import Call, Endpoint
from api.models import Balance, CashLine, Out, Query, StockLine
from core.models import Scope
from core.services import statement as statements
from core.services import stock

MAX_DAYS = 366


def balance_of(found: stock.Balance) -> Balance:
    return Balance(
        party_id=found.party.id or 0,
        name=found.party.name,
        stock=[
            StockLine(
                operator=code,
                available_minor=line["available"],
                reserved_minor=line["reserved"],
                sold_minor=line["sold"],
            )
            for code, line in found.stock.items()
        ],
        cash=[
            CashLine(
                currency=currency,
                cash_minor=line["cash"],
                credit_limit_minor=line["credit_limit"],
                credit_available_minor=line["credit_available"],
            )
            for currency, line in found.cash.items()
        ],
    )


async def get_balance(call: Call) -> Balance:
    return balance_of(await stock.balance(call.core, ref=call.who.party_id))


class StatementQuery(Query):
    """Local days in AIRGATE_TIMEZONE, both included; none: this month so far."""

    start: date | None = Field(default=None, alias="from")
    end: date | None = Field(default=None, alias="to")
    format: Literal["json", "csv"] = "json"

    @model_validator(mode="after")
    def _in_order(self) -> StatementQuery:
        if (
            self.start
            and self.end
            and (self.end < self.start or (self.end - self.start).days > MAX_DAYS)
        ):
            raise ValueError(f"'to' is on or after 'from', at most {MAX_DAYS} days later")
        return self


class Movement(Out):
    at: datetime
    kind: str
    asset: str
    amount_minor: int
    reference: str | None


class Statement(Out):
    start: date = Field(serialization_alias="from")
    end: date = Field(serialization_alias="to")
    movements: list[Movement]


async def get_statement(call: Call) -> Statement | web.Response:
    asked: StatementQuery = call.query
    zone = call.core.settings.timezone
    today = datetime.now(ZoneInfo(zone)).date()
    start = asked.start or (asked.end or today).replace(day=1)
    end = asked.end or max(today, start)
    if (end - start).days > MAX_DAYS:
        end = start + timedelta(days=MAX_DAYS)
    # The same document as the Telegram /statement and `airgate statement` (running balances).
    doc = await statements.for_days(call.core, party_id=call.who.party_id, first=start, last=end)
    moves = [line.move for line in reversed(doc.lines)]  # newest first
    if asked.format == "csv":
        return web.Response(
            body=statements.as_csv(doc, zone=zone),
            content_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="statement-{start}-{end}.csv"'},
        )
    return Statement(
        start=start,
        end=end,
        movements=[
            Movement(
                at=m.at,
                kind=m.kind,
                asset=m.asset,
                amount_minor=m.amount_minor,
                reference=m.reference,
            )
            for m in moves
        ],
    )


ENDPOINTS = (
    Endpoint(
        "GET",
        "/balance",
        get_balance,
        "The key's party's balance: stock per operator, cash and credit",
        Scope.READ,
        response=Balance,
        tag="account",
        errors=(),
    ),
    Endpoint(
        "GET",
        "/statement",
        get_statement,
        "Every movement of the party's stock and cash between two local days (JSON or CSV)",
        Scope.READ,
        response=Statement,
        query=StatementQuery,
        tag="account",
        alternatives=("text/csv",),
        errors=(422,),
    ),
)
