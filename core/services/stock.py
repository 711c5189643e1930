"""Stock operations between levels of the chain, all as ledger postings.

* intake:    the operator's airtime enters the platform (issuance → platform), once per reference;
* sell:      a seller's stock goes to its direct buyer at the agreed discount; the buyer pays from
             its cash first and the rest from its available credit, all in one transaction. The
             seller sells, or the buyer buys (a purchase beyond cash plus available credit is
             refused; a buyer's own purchase that needs credit is a stock request the seller
             approves, core/services/requests.py, which sells inside its decision's transaction);
* deposit:   cash a buyer handed its seller outside AirGate; it first repays used credit, the rest
             becomes cash; a reference is recorded once per seller, a repeat is refused;
* clawback:  a seller takes stock back from its buyer, with a reason;
* credit:    a seller sets its buyer's credit limit; the CREDIT account holds what is still free.

Invariant: every operation between a seller and a buyer locks the buyer's party row first, so what
it reads of the buyer (its limit, its cash, its used credit) cannot change before it commits.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Core
from core.errors import (
    DuplicateReference,
    IdempotencyConflict,
    InputError,
    InsufficientFunds,
    InsufficientStock,
    InvalidAmount,
    NotPermitted,
    Refused,
)
from core.jobs.queue import JobQueue
from core.ledger import AccountRef, Leg, Overdraft, account_balances
from core.models import Account, AccountKind, Operator, Party
from core.money import airtime_asset, cash_asset, discounted_price, format_minor
from core.services import alerts
from core.services.audit import Actor, record
from core.services.catalog import agreement_for, get_operator
from core.services.parties import ensure_active, get_party, platform

operator_t = Operator.__table__  # type: ignore[attr-defined]

# References and idempotency keys: what payment systems and POS ids use; '#' is the ledger's.
REFERENCE = re.compile(r"[A-Za-z0-9._:/-]{1,64}")
# A sale's reference is read out over the phone: Crockford base32 as top-up ids (no I, L, O, U).
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# 60 bits: among a million sales, two share a reference with a chance of one in two million.
SALE_REF_CHARS = 12


def sale_reference(seller_id: int, key: str) -> str:
    """``S`` + 12 Crockford characters from a hash of the seller and the caller's key.

    The same sale asked again (a gateway's retry, a replayed turn) has the same reference, so it
    stays idempotent; the ledger's op key is ``sale:{reference}`` and a transfer's key is unique
    in the database, so no two sales share a reference: a second key hashing alike is taken for
    the first (refused as a conflict unless it is the very same sale).
    """
    digest = hashlib.blake2b(f"{seller_id}:{key}".encode(), digest_size=8).digest()
    value = int.from_bytes(digest) >> (64 - 5 * SALE_REF_CHARS)
    shifts = range(5 * (SALE_REF_CHARS - 1), -1, -5)
    return "S" + "".join(_CROCKFORD[(value >> shift) & 31] for shift in shifts)


def _positive(amount_minor: int) -> None:
    if amount_minor <= 0:
        raise InvalidAmount(reason="the amount must be more than zero")


def _reference(reference: str, *, what: str = "a reference") -> str:
    reference = reference.strip()
    if not REFERENCE.fullmatch(reference):
        raise InputError(reason=f"{what} is 1 to 64 letters, digits or . _ : / -")
    return reference


async def _currency(session: AsyncSession, currency: str) -> str:
    known = set((await session.execute(select(operator_t.c.currency).distinct())).scalars())
    if currency not in known:
        raise InputError(
            reason=f"{currency!r} is not a currency of any operator ({', '.join(sorted(known))})"
        )
    return currency


async def _pair(
    core: Core,
    session: AsyncSession,
    seller_ref: str | int,
    buyer_ref: str | int,
    actor: Actor,
    *,
    buyer_may_act: bool = False,
) -> tuple[Party, Party]:
    country = core.settings.country
    seller = await get_party(session, seller_ref, country=country)
    buyer = await get_party(session, buyer_ref, country=country, lock=True)
    if buyer.parent_id != seller.id:
        raise NotPermitted(reason=f"{buyer.label} does not buy from {seller.label}")
    allowed = (seller.id, buyer.id) if buyer_may_act else (seller.id,)
    if not actor.is_admin and actor.party_id not in allowed:
        raise NotPermitted(reason=f"only {seller.label} or an admin can do this")
    ensure_active(seller)
    ensure_active(buyer)
    return seller, buyer


@asynccontextmanager
async def _unit(core: Core, within: AsyncSession | None) -> AsyncIterator[AsyncSession]:
    """The caller's transaction when it passes one (it commits), else a new one."""
    if within is not None:
        yield within
        return
    async with core.transaction() as session:
        yield session


@dataclass(frozen=True, slots=True)
class Receipt:
    """What an operation did (or, when ``replayed``, had already done)."""

    reference: str
    replayed: bool
    face_minor: int = 0
    price_minor: int = 0
    cash_minor: int = 0
    credit_minor: int = 0


async def intake(
    core: Core, *, actor: Actor, operator_code: str, amount_minor: int, reference: str
) -> Receipt:
    """Airtime bought from the operator enters the platform's stock."""
    _positive(amount_minor)
    reference = _reference(reference)
    async with core.transaction() as session:
        await get_operator(session, operator_code)
        owner = await platform(session)
        asset = airtime_asset(operator_code)
        leg = Leg(
            "intake",
            AccountRef(AccountKind.ISSUANCE, asset),
            AccountRef(AccountKind.MAIN, asset, owner.id),
            amount_minor,
            reference=reference,
        )
        posting = await core.ledger.post(
            session, op_key=f"intake:{operator_code}:{reference}", legs=[leg]
        )
        if posting.replayed:
            raise DuplicateReference(reference=reference)
        await record(
            session,
            actor=actor,
            action="stock.intake",
            subject_party_id=owner.id,
            reference=reference,
            details={"operator": operator_code, "amount_minor": amount_minor},
        )
    return Receipt(reference=reference, replayed=False, face_minor=amount_minor)


async def sell(
    core: Core,
    *,
    actor: Actor,
    seller_ref: str | int,
    buyer_ref: str | int,
    operator_code: str,
    face_minor: int,
    key: str | None = None,
    cash_only: bool = False,
    within: AsyncSession | None = None,
    queue: JobQueue | None = None,
) -> Receipt:
    """Sell ``face_minor`` of an operator's airtime to a direct buyer at the agreed discount.

    ``cash_only``: refuse (InsufficientFunds) rather than pay any of it on credit (a buyer's own
    purchase). ``within``: post in the caller's transaction, which commits it.
    """
    _positive(face_minor)
    key = _reference(key, what="a key") if key is not None else uuid.uuid4().hex
    async with _unit(core, within) as session:
        seller, buyer = await _pair(core, session, seller_ref, buyer_ref, actor, buyer_may_act=True)
        reference = sale_reference(seller.id or 0, key)
        operator = await get_operator(session, operator_code)
        agreement = await agreement_for(
            session, seller_id=seller.id or 0, buyer_id=buyer.id or 0, operator_code=operator_code
        )
        price = discounted_price(face_minor, agreement.discount_bps if agreement else 0)
        stock, cash = airtime_asset(operator_code), cash_asset(operator.currency)
        balances = await account_balances(session, buyer.id or 0)
        cash_part = min(price, max(balances.get((cash, AccountKind.MAIN), 0), 0))
        if cash_only and cash_part < price:
            raise InsufficientFunds(
                party=buyer.label,
                available_minor=cash_part,
                needed_minor=price,
                currency=operator.currency,
            )
        legs = [
            Leg(
                "sale",
                AccountRef(AccountKind.MAIN, stock, seller.id),
                AccountRef(AccountKind.MAIN, stock, buyer.id),
                face_minor,
                reference=reference,
            ),
            Leg(
                "payment",
                AccountRef(AccountKind.MAIN, cash, buyer.id),
                AccountRef(AccountKind.MAIN, cash, seller.id),
                cash_part,
                reference=reference,
            ),
            Leg(
                "credit_payment",
                AccountRef(AccountKind.CREDIT, cash, buyer.id),
                AccountRef(AccountKind.MAIN, cash, seller.id),
                price - cash_part,
                reference=reference,
            ),
        ]
        try:
            posting = await core.ledger.post(session, op_key=f"sale:{reference}", legs=legs)
        except Overdraft as exc:
            if exc.account.asset == stock:
                raise InsufficientStock(
                    party=seller.label,
                    asset=stock,
                    available_minor=exc.available_minor,
                    needed_minor=face_minor,
                ) from None
            available = balances.get((cash, AccountKind.MAIN), 0) + balances.get(
                (cash, AccountKind.CREDIT), 0
            )
            raise InsufficientFunds(
                party=buyer.label,
                available_minor=available,
                needed_minor=price,
                currency=operator.currency,
            ) from None
        if not posting.replayed:
            await record(
                session,
                actor=actor,
                action="stock.sell",
                subject_party_id=buyer.id,
                reference=reference,
                details={
                    "key": key,
                    "operator": operator_code,
                    "face_minor": face_minor,
                    "price_minor": price,
                    "credit_minor": price - cash_part,
                },
            )
        # The seller's own stock fell: told once per crossing (core/services/alerts.py).
        owed = await alerts.owe_low_stock(
            core,
            session,
            holder=alerts.Holder.of(seller),
            posting=posting,
            operator=operator,
            tag=f"t{posting.transfer_ids[0]}",
        )
    if within is None:  # else sent once the caller commits (or by the sweeper)
        await alerts.send_owed(queue, owed)
    paid, on_credit = posting.amount("payment"), posting.amount("credit_payment")
    return Receipt(
        reference=reference,
        replayed=posting.replayed,
        face_minor=posting.amount("sale"),
        price_minor=paid + on_credit,
        cash_minor=paid,
        credit_minor=on_credit,
    )


async def deposit(
    core: Core,
    *,
    actor: Actor,
    receiver_ref: str | int,
    payer_ref: str | int,
    amount_minor: int,
    reference: str,
    currency: str = "KES",
) -> Receipt:
    """Record cash ``payer`` handed ``receiver``: it repays used credit first, then adds cash."""
    _positive(amount_minor)
    reference = _reference(reference)
    cash = cash_asset(currency)
    async with core.transaction() as session:
        receiver, payer = await _pair(core, session, receiver_ref, payer_ref, actor)
        await _currency(session, currency)
        balances = await account_balances(session, payer.id or 0)
        used_credit = max(payer.credit_limit_minor - balances.get((cash, AccountKind.CREDIT), 0), 0)
        repay = min(amount_minor, used_credit)
        source = AccountRef(AccountKind.DEPOSITS, cash)
        legs = [
            Leg(
                "deposit",
                source,
                AccountRef(AccountKind.MAIN, cash, payer.id),
                amount_minor - repay,
                reference=reference,
            ),
            Leg(
                "repayment",
                source,
                AccountRef(AccountKind.CREDIT, cash, payer.id),
                repay,
                reference=reference,
            ),
        ]
        try:
            posting = await core.ledger.post(
                session, op_key=f"deposit:{receiver.id}:{reference}", legs=legs
            )
        except IdempotencyConflict:  # same reference, split differently since: still a repeat
            raise DuplicateReference(reference=reference) from None
        if posting.replayed:
            raise DuplicateReference(reference=reference)
        await record(
            session,
            actor=actor,
            action="cash.deposit",
            subject_party_id=payer.id,
            reference=reference,
            details={"amount_minor": amount_minor, "repaid_credit_minor": repay},
        )
    return Receipt(
        reference=reference,
        replayed=False,
        price_minor=amount_minor,
        cash_minor=amount_minor - repay,
        credit_minor=repay,
    )


async def clawback(
    core: Core,
    *,
    actor: Actor,
    seller_ref: str | int,
    buyer_ref: str | int,
    operator_code: str,
    amount_minor: int,
    reason: str,
    key: str | None = None,
    queue: JobQueue | None = None,
) -> Receipt:
    """Take stock back from a buyer (a mistaken sale, fraud); the reason is kept on the transfer."""
    _positive(amount_minor)
    reason = " ".join(reason.split())[:200]
    if not reason:
        raise InvalidAmount(reason="a clawback needs a reason")
    key = _reference(key, what="a key") if key is not None else uuid.uuid4().hex
    async with core.transaction() as session:
        seller, buyer = await _pair(core, session, seller_ref, buyer_ref, actor)
        operator = await get_operator(session, operator_code)
        stock = airtime_asset(operator_code)
        leg = Leg(
            "clawback",
            AccountRef(AccountKind.MAIN, stock, buyer.id),
            AccountRef(AccountKind.MAIN, stock, seller.id),
            amount_minor,
            reference=key,
            memo=reason,
        )
        try:
            posting = await core.ledger.post(
                session, op_key=f"clawback:{seller.id}:{key}", legs=[leg]
            )
        except Overdraft as exc:
            raise InsufficientStock(
                party=buyer.label,
                asset=stock,
                available_minor=exc.available_minor,
                needed_minor=amount_minor,
            ) from None
        if not posting.replayed:
            await record(
                session,
                actor=actor,
                action="stock.clawback",
                subject_party_id=buyer.id,
                reference=key,
                details={"operator": operator_code, "amount_minor": amount_minor, "reason": reason},
            )
        owed = await alerts.owe_low_stock(  # the buyer's stock fell: as for a sale's seller
            core,
            session,
            holder=alerts.Holder.of(buyer),
            posting=posting,
            operator=operator,
            tag=f"t{posting.transfer_ids[0]}",
        )
    await alerts.send_owed(queue, owed)
    return Receipt(reference=key, replayed=posting.replayed, face_minor=amount_minor)


async def set_credit_limit(
    core: Core,
    *,
    actor: Actor,
    seller_ref: str | int,
    buyer_ref: str | int,
    limit_minor: int,
    currency: str = "KES",
) -> Receipt:
    """Move the buyer's free credit by the change of limit; below what is in use is refused."""
    if limit_minor < 0:
        raise InvalidAmount(reason="a credit limit cannot be negative")
    cash = cash_asset(currency)
    key = uuid.uuid4().hex
    async with core.transaction() as session:
        seller, buyer = await _pair(core, session, seller_ref, buyer_ref, actor)
        await _currency(session, currency)
        change = limit_minor - buyer.credit_limit_minor
        line, free = (
            AccountRef(AccountKind.CREDIT_LINE, cash),
            AccountRef(AccountKind.CREDIT, cash, buyer.id),
        )
        legs = (
            [Leg("credit", line, free, change)]
            if change > 0
            else [Leg("credit", free, line, -change)]
        )
        if change:
            try:
                await core.ledger.post(session, op_key=f"credit:{buyer.id}:{key}", legs=legs)
            except Overdraft as exc:
                in_use = buyer.credit_limit_minor - exc.available_minor
                used = format_minor(in_use, currency)
                raise Refused(
                    reason=f"{used} of credit is in use; the limit cannot go lower"
                ) from None
        buyer.credit_limit_minor = limit_minor
        session.add(buyer)
        await record(
            session,
            actor=actor,
            action="credit.limit",
            subject_party_id=buyer.id,
            details={"limit_minor": limit_minor, "seller_id": seller.id},
        )
    return Receipt(reference=key, replayed=False, price_minor=limit_minor)


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
    _positive(face_minor)
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


__all__ = [
    "Balance",
    "LowStock",
    "Quote",
    "Receipt",
    "balance",
    "clawback",
    "deposit",
    "intake",
    "low_stock",
    "quote",
    "sell",
    "set_credit_limit",
]
