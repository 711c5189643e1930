"""Stock operations on real databases: intake, sale at a discount, deposits, credit, claw-back."""

from __future__ import annotations

import asyncio

import pytest

from core.context import Core
from core.errors import (
    DuplicateReference,
    InputError,
    InsufficientFunds,
    InsufficientStock,
    NotPermitted,
    PartyInactive,
    Refused,
)
from core.models import PartyStatus
from core.services import catalog, parties, stock
from tests.helpers import ADMIN, SAFARICOM, assert_ledger_ok, chain, give_distributor_stock


async def _sell(
    core: Core, seller: str, buyer: str, face: int, key: str | None = None
) -> stock.Receipt:
    return await stock.sell(
        core,
        actor=ADMIN,
        seller_ref=seller,
        buyer_ref=buyer,
        operator_code=SAFARICOM,
        face_minor=face,
        key=key,
    )


async def _deposit(core: Core, receiver: str, payer: str, amount: int, ref: str) -> stock.Receipt:
    return await stock.deposit(
        core,
        actor=ADMIN,
        receiver_ref=receiver,
        payer_ref=payer,
        amount_minor=amount,
        reference=ref,
    )


async def test_intake_reference_is_recorded_once(core: Core) -> None:
    await chain(core)
    await stock.intake(
        core, actor=ADMIN, operator_code=SAFARICOM, amount_minor=10_000, reference="PO-1"
    )
    with pytest.raises(DuplicateReference):
        await stock.intake(
            core, actor=ADMIN, operator_code=SAFARICOM, amount_minor=10_000, reference="PO-1"
        )
    platform = await stock.balance(core, ref="+254799999999")
    assert platform.stock[SAFARICOM]["available"] == 10_000
    await assert_ledger_ok(core)


async def test_sale_at_discount_paid_from_cash_then_credit(core: Core) -> None:
    distributor, [shop] = await chain(core)
    assert distributor.id and shop.id
    await give_distributor_stock(core, distributor, 100_000, "d1")
    await catalog.set_agreement(
        core, actor=ADMIN, seller_id=distributor.id, buyer_id=shop.id, discount_bps=250
    )
    await stock.set_credit_limit(
        core, actor=ADMIN, seller_ref=distributor.msisdn, buyer_ref=shop.msisdn, limit_minor=5_000
    )
    await _deposit(core, distributor.msisdn, shop.msisdn, 6_000, "cash-1")

    receipt = await _sell(core, distributor.msisdn, shop.msisdn, 10_000, key="sale-1")
    assert (receipt.price_minor, receipt.cash_minor, receipt.credit_minor) == (9_750, 6_000, 3_750)
    again = await _sell(core, distributor.msisdn, shop.msisdn, 10_000, key="sale-1")
    assert again.replayed and again.credit_minor == 3_750  # the original's split, not a new one

    bal = await stock.balance(core, ref=shop.msisdn)
    assert bal.stock[SAFARICOM]["available"] == 10_000
    assert bal.cash["KES"] == {"cash": 0, "credit_limit": 5_000, "credit_available": 1_250}
    with pytest.raises(InsufficientFunds):  # 1,250 of credit left; 1,950 needed
        await _sell(core, distributor.msisdn, shop.msisdn, 2_000)
    with pytest.raises(Refused):  # 3,750 of credit is in use
        await stock.set_credit_limit(
            core,
            actor=ADMIN,
            seller_ref=distributor.msisdn,
            buyer_ref=shop.msisdn,
            limit_minor=1_000,
        )

    # A deposit repays used credit first; the same reference again is refused, not re-counted.
    paid = await _deposit(core, distributor.msisdn, shop.msisdn, 5_000, "cash-2")
    assert (paid.credit_minor, paid.cash_minor) == (3_750, 1_250)
    with pytest.raises(DuplicateReference):
        await _deposit(core, distributor.msisdn, shop.msisdn, 5_000, "cash-2")
    bal = await stock.balance(core, ref=shop.msisdn)
    assert bal.cash["KES"] == {"cash": 1_250, "credit_limit": 5_000, "credit_available": 5_000}
    await assert_ledger_ok(core)


async def test_refusals_name_the_reason(core: Core) -> None:
    distributor, [shop, other] = await chain(core, retailers=2)
    await give_distributor_stock(core, distributor, 1_000, "d1")
    await _deposit(core, distributor.msisdn, shop.msisdn, 100_000, "cash-1")
    with pytest.raises(InsufficientStock) as short:
        await _sell(core, distributor.msisdn, shop.msisdn, 5_000)
    assert short.value.available_minor == 1_000 and short.value.needed_minor == 5_000
    with pytest.raises(NotPermitted):  # a retailer does not sell to another retailer
        await _sell(core, shop.msisdn, other.msisdn, 100)
    await parties.set_status(core, actor=ADMIN, ref=shop.msisdn, status=PartyStatus.SUSPENDED)
    with pytest.raises(PartyInactive):
        await _sell(core, distributor.msisdn, shop.msisdn, 100)
    await assert_ledger_ok(core)


async def test_clawback_returns_stock_with_its_reason(core: Core) -> None:
    distributor, [shop] = await chain(core)
    await give_distributor_stock(core, distributor, 5_000, "d1")
    await _deposit(core, distributor.msisdn, shop.msisdn, 5_000, "cash-1")
    await _sell(core, distributor.msisdn, shop.msisdn, 5_000)
    await stock.clawback(
        core,
        actor=ADMIN,
        seller_ref=distributor.msisdn,
        buyer_ref=shop.msisdn,
        operator_code=SAFARICOM,
        amount_minor=2_000,
        reason="sold to the wrong shop",
    )
    with pytest.raises(InsufficientStock):
        await stock.clawback(
            core,
            actor=ADMIN,
            seller_ref=distributor.msisdn,
            buyer_ref=shop.msisdn,
            operator_code=SAFARICOM,
            amount_minor=3_001,
            reason="too much",
        )
    assert (await stock.balance(core, ref=shop.msisdn)).stock[SAFARICOM]["available"] == 3_000
    await assert_ledger_ok(core)


async def test_concurrent_limit_changes_and_deposits_never_create_credit(core: Core) -> None:
    """Each read its buyer's limit and used credit before the others wrote them (found in review:
    on PostgreSQL two limits at once left free credit above the limit)."""
    distributor, [shop] = await chain(core)
    await give_distributor_stock(core, distributor, 100_000, "d1")
    await stock.set_credit_limit(
        core, actor=ADMIN, seller_ref=distributor.msisdn, buyer_ref=shop.msisdn, limit_minor=4_000
    )
    await _sell(core, distributor.msisdn, shop.msisdn, 4_000)  # all credit in use

    async def limit(value: int) -> object:
        return await stock.set_credit_limit(
            core,
            actor=ADMIN,
            seller_ref=distributor.msisdn,
            buyer_ref=shop.msisdn,
            limit_minor=value,
        )

    deposits = [_deposit(core, distributor.msisdn, shop.msisdn, 4_000, f"p{i}") for i in range(6)]
    limits = [limit(v) for v in (8_000, 5_000, 12_000, 6_000, 9_000, 7_000)]
    await asyncio.gather(*deposits, *limits, return_exceptions=True)
    await assert_ledger_ok(core)  # includes: free credit <= the limit
    bal = (await stock.balance(core, ref=shop.msisdn)).cash["KES"]
    assert bal["credit_available"] == bal["credit_limit"]  # 24,000 deposited repaid all 4,000
    assert bal["cash"] == 24_000 - 4_000


async def test_deposit_in_an_unknown_currency_is_refused(core: Core) -> None:
    distributor, [shop] = await chain(core)
    with pytest.raises(InputError, match="KSH"):
        await stock.deposit(
            core,
            actor=ADMIN,
            receiver_ref=distributor.msisdn,
            payer_ref=shop.msisdn,
            amount_minor=100,
            reference="typo",
            currency="KSH",
        )
