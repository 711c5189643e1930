"""Stock moving down the chain: intake (the operator's airtime enters the platform, once per
reference), sell (to a direct buyer at the agreed discount, paid from cash first and the rest on
credit, in one transaction), clawback (a seller takes stock back, with a reason)."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Core
from core.errors import DuplicateReference, InsufficientFunds, InsufficientStock, InvalidAmount
from core.jobs.queue import JobQueue
from core.ledger import AccountRef, Leg, Overdraft, Posting, account_balances
from core.models import AccountKind, Operator, Party
from core.money import airtime_asset, cash_asset, discounted_price
from core.services import alerts
from core.services.audit import Actor, record
from core.services.catalog import agreement_for, get_operator
from core.services.parties import platform
from core.services.stock.rules import Receipt, checked_reference, positive, seller_and_buyer, unit

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


async def intake(
    core: Core, *, actor: Actor, operator_code: str, amount_minor: int, reference: str
) -> Receipt:
    """Airtime bought from the operator enters the platform's stock."""
    positive(amount_minor)
    reference = checked_reference(reference)
    async with core.money() as session:
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
    positive(face_minor)
    key = checked_reference(key, what="a key") if key is not None else uuid.uuid4().hex
    async with unit(core, within) as session:
        seller, buyer = await seller_and_buyer(
            core, session, seller_ref, buyer_ref, actor, buyer_may_act=True
        )
        sale = await _terms(session, seller, buyer, operator_code, face_minor, key)
        if cash_only and sale.cash_minor < sale.price_minor:
            raise InsufficientFunds(
                party=buyer.label,
                available_minor=sale.cash_minor,
                needed_minor=sale.price_minor,
                currency=sale.operator.currency,
            )
        posting = await _post_sale(core, session, sale)
        if not posting.replayed:
            await _record_sale(session, actor, sale, key)
        # The seller's own stock fell: told once per crossing (core/services/alerts.py).
        owed = await alerts.owe_low_stock(
            core,
            session,
            holder=await alerts.Holder.of(session, seller),
            posting=posting,
            operator=sale.operator,
            tag=f"t{posting.transfer_ids[0]}",
        )
    if within is None:  # else sent once the caller commits (or by the sweeper)
        await alerts.send_owed(queue, owed)
    return _sale_receipt(sale.reference, posting)


def _sale_receipt(reference: str, posting: Posting) -> Receipt:
    """What the sale moved (the original's amounts, on a replay)."""
    paid, on_credit = posting.amount("payment"), posting.amount("credit_payment")
    return Receipt(
        reference=reference,
        replayed=posting.replayed,
        face_minor=posting.amount("sale"),
        price_minor=paid + on_credit,
        cash_minor=paid,
        credit_minor=on_credit,
    )


@dataclass(frozen=True, slots=True)
class _Sale:
    """A sale's terms, read under the buyer's lock: the price at the agreed discount and how much
    of it the buyer's cash covers (the rest goes on credit)."""

    seller: Party
    buyer: Party
    operator: Operator
    reference: str
    face_minor: int
    price_minor: int
    cash_minor: int
    balances: dict[tuple[str, str], int]  # the buyer's, before the sale

    @property
    def stock(self) -> str:
        return airtime_asset(self.operator.code)

    @property
    def cash(self) -> str:
        return cash_asset(self.operator.currency)


async def _terms(
    session: AsyncSession,
    seller: Party,
    buyer: Party,
    operator_code: str,
    face_minor: int,
    key: str,
) -> _Sale:
    operator = await get_operator(session, operator_code)
    agreement = await agreement_for(
        session, seller_id=seller.id or 0, buyer_id=buyer.id or 0, operator_code=operator_code
    )
    price = discounted_price(face_minor, agreement.discount_bps if agreement else 0)
    balances = await account_balances(session, buyer.id or 0)
    in_cash = balances.get((cash_asset(operator.currency), AccountKind.MAIN), 0)
    return _Sale(
        seller=seller,
        buyer=buyer,
        operator=operator,
        reference=sale_reference(seller.id or 0, key),
        face_minor=face_minor,
        price_minor=price,
        cash_minor=min(price, max(in_cash, 0)),
        balances=balances,
    )


async def _post_sale(core: Core, session: AsyncSession, sale: _Sale) -> Posting:
    """Stock to the buyer, cash and credit to the seller, in one posting; a refused debit becomes
    the seller's InsufficientStock or the buyer's InsufficientFunds."""
    seller, buyer, stock, cash = sale.seller.id, sale.buyer.id, sale.stock, sale.cash
    ref = sale.reference
    legs = [
        Leg(
            "sale",
            AccountRef(AccountKind.MAIN, stock, seller),
            AccountRef(AccountKind.MAIN, stock, buyer),
            sale.face_minor,
            reference=ref,
        ),
        Leg(
            "payment",
            AccountRef(AccountKind.MAIN, cash, buyer),
            AccountRef(AccountKind.MAIN, cash, seller),
            sale.cash_minor,
            reference=ref,
        ),
        Leg(
            "credit_payment",
            AccountRef(AccountKind.CREDIT, cash, buyer),
            AccountRef(AccountKind.MAIN, cash, seller),
            sale.price_minor - sale.cash_minor,
            reference=ref,
        ),
    ]
    try:
        return await core.ledger.post(session, op_key=f"sale:{ref}", legs=legs)
    except Overdraft as exc:
        if exc.account.asset == stock:
            raise InsufficientStock(
                party=sale.seller.label,
                asset=stock,
                available_minor=exc.available_minor,
                needed_minor=sale.face_minor,
            ) from None
        balances = sale.balances
        available = balances.get((cash, AccountKind.MAIN), 0) + balances.get(
            (cash, AccountKind.CREDIT), 0
        )
        raise InsufficientFunds(
            party=sale.buyer.label,
            available_minor=available,
            needed_minor=sale.price_minor,
            currency=sale.operator.currency,
        ) from None


async def _record_sale(session: AsyncSession, actor: Actor, sale: _Sale, key: str) -> None:
    await record(
        session,
        actor=actor,
        action="stock.sell",
        subject_party_id=sale.buyer.id,
        reference=sale.reference,
        details={
            "key": key,
            "operator": sale.operator.code,
            "face_minor": sale.face_minor,
            "price_minor": sale.price_minor,
            "credit_minor": sale.price_minor - sale.cash_minor,
        },
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
    positive(amount_minor)
    reason = " ".join(reason.split())[:200]
    if not reason:
        raise InvalidAmount(reason="a clawback needs a reason")
    key = checked_reference(key, what="a key") if key is not None else uuid.uuid4().hex
    async with core.money() as session:
        seller, buyer = await seller_and_buyer(core, session, seller_ref, buyer_ref, actor)
        operator = await get_operator(session, operator_code)
        posting = await _post_clawback(
            core, session, seller, buyer, operator_code, amount_minor, key, reason
        )
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
            holder=await alerts.Holder.of(session, buyer),
            posting=posting,
            operator=operator,
            tag=f"t{posting.transfer_ids[0]}",
        )
    await alerts.send_owed(queue, owed)
    return Receipt(reference=key, replayed=posting.replayed, face_minor=amount_minor)


async def _post_clawback(
    core: Core,
    session: AsyncSession,
    seller: Party,
    buyer: Party,
    operator_code: str,
    amount_minor: int,
    key: str,
    reason: str,
) -> Posting:
    """The buyer's stock back to the seller, the reason kept as the transfer's memo."""
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
        return await core.ledger.post(session, op_key=f"clawback:{seller.id}:{key}", legs=[leg])
    except Overdraft as exc:
        raise InsufficientStock(
            party=buyer.label,
            asset=stock,
            available_minor=exc.available_minor,
            needed_minor=amount_minor,
        ) from None
