"""Reading positions, no posting: what a purchase would cost (quote), a distributor's retailers low
on stock, and a party's balance (stock per operator, cash with credit)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, literal, select

from core.context import Core
from core.errors import NotPermitted
from core.ledger import account_balances
from core.models import Account, AccountKind, Party
from core.money import cash_asset, discounted_price
from core.services.catalog import agreement_for, get_operator
from core.services.parties import get_party
from core.services.stock.rules import positive


@dataclass(frozen=True, slots=True)
class Quote:
    """What buying ``face_minor`` would cost the buyer, and how it would be paid."""

    seller: Party
    face_minor: int
    price_minor: int
    cash_minor: int  # from the buyer's cash
    credit_minor: int  # the rest, on credit
    payable_minor: int  # cash plus available credit: more than this is refused
    currency: str


async def quote(core: Core, *, buyer_id: int, operator_code: str, face_minor: int) -> Quote:
    """The price :func:`sell` would charge now, without moving anything."""
    positive(face_minor)
    async with core.sessions() as session:
        buyer = await get_party(session, buyer_id, country=core.settings.country)
        if buyer.parent_id is None:
            raise NotPermitted(reason=f"{buyer.label} has no seller")
        seller = await get_party(session, buyer.parent_id, country=core.settings.country)
        operator = await get_operator(session, operator_code)
        agreement = await agreement_for(
            session, seller_id=seller.id or 0, buyer_id=buyer_id, operator_code=operator_code
        )
        balances = await account_balances(session, buyer_id)
    price = discounted_price(face_minor, agreement.discount_bps if agreement else 0)
    cash = cash_asset(operator.currency)
    in_cash = max(balances.get((cash, AccountKind.MAIN), 0), 0)
    credit = max(balances.get((cash, AccountKind.CREDIT), 0), 0)
    cash_part = min(price, in_cash)
    return Quote(
        seller=seller,
        face_minor=face_minor,
        price_minor=price,
        cash_minor=cash_part,
        credit_minor=price - cash_part,
        payable_minor=in_cash + credit,
        currency=operator.currency,
    )


@dataclass(frozen=True, slots=True)
class LowStock:
    party_id: int
    name: str
    msisdn: str
    operator_code: str
    available_minor: int


async def low_stock(
    core: Core, *, distributor_id: int, threshold_minor: int, limit: int = 100
) -> list[LowStock]:
    """A distributor's retailers holding less than their threshold of an operator's stock they
    carry, lowest first (one line per retailer and operator). The threshold is the retailer's own
    ``low_stock_minor``, else ``threshold_minor`` (the rule of core/services/alerts.py)."""
    party_t = Party.__table__  # type: ignore[attr-defined]
    account_t = Account.__table__  # type: ignore[attr-defined]
    query = (
        select(
            party_t.c.id,
            party_t.c.name,
            party_t.c.msisdn,
            account_t.c.asset,
            account_t.c.balance_minor,
        )
        .join(account_t, account_t.c.party_id == party_t.c.id)
        .where(
            party_t.c.parent_id == distributor_id,
            account_t.c.kind == AccountKind.MAIN,
            account_t.c.asset.like("AIRTIME:%"),
            account_t.c.balance_minor
            < func.coalesce(party_t.c.low_stock_minor, literal(threshold_minor)),
        )
        .order_by(account_t.c.balance_minor, party_t.c.id)
        .limit(limit)
    )
    async with core.sessions() as session:
        rows = (await session.execute(query)).all()
    return [
        LowStock(pid, name, msisdn, asset.partition(":")[2], available)
        for pid, name, msisdn, asset, available in rows
    ]


@dataclass(frozen=True, slots=True)
class Balance:
    """A party's position: stock per operator and cash with credit, in minor units."""

    party: Party
    stock: dict[str, dict[str, int]]  # operator code → {"available", "reserved", "sold"}
    cash: dict[str, dict[str, int]]  # currency → {"cash", "credit_limit", "credit_available"}


async def balance(core: Core, *, ref: str | int) -> Balance:
    async with core.sessions() as session:
        party = await get_party(session, ref, country=core.settings.country)
        rows = await account_balances(session, party.id or 0)
    stock: dict[str, dict[str, int]] = {}
    cash: dict[str, dict[str, int]] = {}
    names = {
        AccountKind.MAIN: "available",
        AccountKind.INFLIGHT: "reserved",
        AccountKind.SOLD: "sold",
    }
    for (asset, kind), amount in sorted(rows.items()):
        family, _, code = asset.partition(":")
        if family == "AIRTIME":
            stock.setdefault(code, {"available": 0, "reserved": 0, "sold": 0})[
                names[AccountKind(kind)]
            ] = amount
        else:
            entry = cash.setdefault(
                code, {"cash": 0, "credit_limit": party.credit_limit_minor, "credit_available": 0}
            )
            entry["cash" if kind == AccountKind.MAIN else "credit_available"] = amount
    if party.credit_limit_minor and not cash:
        cash["KES"] = {"cash": 0, "credit_limit": party.credit_limit_minor, "credit_available": 0}
    return Balance(party=party, stock=stock, cash=cash)
