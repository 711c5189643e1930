"""Money between a seller and its buyer: a deposit (cash handed over outside AirGate; it repays
used credit first, the rest becomes cash; a reference once per seller) and the buyer's credit
limit (the CREDIT account holds what is still free)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Core
from core.errors import DuplicateReference, IdempotencyConflict, InvalidAmount, Refused
from core.ledger import AccountRef, Leg, Overdraft, account_balances
from core.models import AccountKind, Party
from core.money import cash_asset, format_minor
from core.services.audit import Actor, record
from core.services.stock.rules import (
    Receipt,
    checked_reference,
    known_currency,
    positive,
    seller_and_buyer,
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
    positive(amount_minor)
    reference = checked_reference(reference)
    cash = cash_asset(currency)
    async with core.money() as session:
        receiver, payer = await seller_and_buyer(core, session, receiver_ref, payer_ref, actor)
        await known_currency(session, currency)
        repay = await _credit_to_repay(session, payer, cash, amount_minor)
        legs = _deposit_legs(payer, cash, amount_minor, repay, reference)
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


async def _credit_to_repay(
    session: AsyncSession, payer: Party, cash: str, amount_minor: int
) -> int:
    """How much of the deposit repays the payer's used credit (all of it, up to what is used)."""
    balances = await account_balances(session, payer.id or 0)
    used_credit = max(payer.credit_limit_minor - balances.get((cash, AccountKind.CREDIT), 0), 0)
    return min(amount_minor, used_credit)


def _deposit_legs(
    payer: Party, cash: str, amount_minor: int, repay: int, reference: str
) -> list[Leg]:
    source = AccountRef(AccountKind.DEPOSITS, cash)
    return [
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
    async with core.money() as session:
        seller, buyer = await seller_and_buyer(core, session, seller_ref, buyer_ref, actor)
        await known_currency(session, currency)
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
