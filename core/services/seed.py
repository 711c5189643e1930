"""Deterministic demo data (``airgate seed --demo``), documented in docs/DEMO.md.

Numbers: platform +254700000000, distributor +254700000100, retailers +254700000001 … +254700000099
and, past 99, +254701000100 onwards. Every PIN is 1234. Every retailer has KES 5,000 of each
operator's stock but Demo Shop 004, which has KES 800 of Telkom (low on stock). Running it again
changes nothing: every posting has a fixed key or reference, and existing parties are kept.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass

from core.context import Core
from core.errors import AlreadyExists, DuplicateReference
from core.models import Party, PartyStatus, Role
from core.money import MINOR_PER_MAJOR
from core.security import Pin
from core.services import catalog, parties, stock
from core.services.audit import Actor

DEMO_PIN = "1234"
PLATFORM_MSISDN = "+254700000000"
DISTRIBUTOR_MSISDN = "+254700000100"
KES = MINOR_PER_MAJOR
RETAILER_STOCK_MINOR = 5_000 * KES  # per operator
RETAILER_DEPOSIT_MINOR = 20_000 * KES
RETAILER_CREDIT_LIMIT_MINOR = 5_000 * KES
# One retailer is low on one operator's stock, below AIRGATE_LOW_STOCK_MINOR's default (KES 1,000),
# so the distributor's "3 Low-stock retailers" shows something in the demo.
LOW_STOCK_RETAILER, LOW_STOCK_OPERATOR, LOW_STOCK_MINOR = 4, "telkom-ke", 800 * KES
DISTRIBUTOR_SPARE_MINOR = 500_000 * KES  # per operator, beyond what the retailers get
PLATFORM_TO_DISTRIBUTOR_BPS = 400
DISTRIBUTOR_TO_RETAILER_BPS = 250


def retailer_msisdn(index: int) -> str:
    """Retailer ``index`` (1-based): +2547000000NN below 100, +254701NNNNNN from 100."""
    if not 1 <= index <= 999_999:
        raise ValueError("retailer index is 1 to 999999")
    return f"+2547000000{index:02d}" if index < 100 else f"+254701{index:06d}"


@dataclass(frozen=True, slots=True)
class SeedSummary:
    platform: str
    distributor: str
    retailers: int
    pin: str = DEMO_PIN


async def _party(core: Core, *, role: Role, name: str, msisdn: str, parent: str | None) -> Party:
    try:
        return await parties.add_party(
            core,
            actor=Actor.system(),
            role=role,
            name=name,
            msisdn=msisdn,
            parent_ref=parent,
            pin=Pin(DEMO_PIN),
            status=PartyStatus.ACTIVE,
        )
    except AlreadyExists:
        async with core.sessions() as session:
            return await parties.get_party(session, msisdn, country=core.settings.country)


async def seed_demo(core: Core, *, retailers: int = 10) -> SeedSummary:
    actor = Actor.system()
    await catalog.load_catalog(core, text=catalog.demo_catalog_text(), actor=actor)
    async with core.sessions() as session:
        operators = [op.code for op in await catalog.list_operators(session, country="KE")]
    platform = await _party(
        core, role=Role.PLATFORM, name="AirGate Platform", msisdn=PLATFORM_MSISDN, parent=None
    )
    distributor = await _party(
        core,
        role=Role.DISTRIBUTOR,
        name="Demo Distributor",
        msisdn=DISTRIBUTOR_MSISDN,
        parent=PLATFORM_MSISDN,
    )
    assert platform.id and distributor.id
    await catalog.set_agreement(
        core,
        actor=actor,
        seller_id=platform.id,
        buyer_id=distributor.id,
        discount_bps=PLATFORM_TO_DISTRIBUTOR_BPS,
    )
    await _stock_distributor(core, actor, operators, retailers)
    for index in range(1, retailers + 1):
        await _seed_retailer(core, index=index, distributor=distributor, operators=operators)
    return SeedSummary(
        platform=PLATFORM_MSISDN, distributor=DISTRIBUTOR_MSISDN, retailers=retailers
    )


async def _stock_distributor(
    core: Core, actor: Actor, operators: list[str], retailers: int
) -> None:
    """Airtime into the platform, the distributor's cash deposit, and the platform's sale to it:
    enough for every retailer's stock and a spare."""
    per_operator = retailers * RETAILER_STOCK_MINOR + DISTRIBUTOR_SPARE_MINOR
    for code in operators:
        await _once(
            stock.intake(
                core,
                actor=actor,
                operator_code=code,
                amount_minor=per_operator,
                reference=f"demo-intake-{code}",
            )
        )
    await _once(
        stock.deposit(
            core,
            actor=actor,
            receiver_ref=PLATFORM_MSISDN,
            payer_ref=DISTRIBUTOR_MSISDN,
            amount_minor=per_operator * len(operators),
            reference="demo-deposit-distributor",
        )
    )
    for code in operators:
        await stock.sell(
            core,
            actor=actor,
            seller_ref=PLATFORM_MSISDN,
            buyer_ref=DISTRIBUTOR_MSISDN,
            operator_code=code,
            face_minor=per_operator,
            key=f"demo-stock-{code}",
        )


async def _seed_retailer(
    core: Core, *, index: int, distributor: Party, operators: list[str]
) -> None:
    actor = Actor.system()
    msisdn = retailer_msisdn(index)
    retailer = await _party(
        core,
        role=Role.RETAILER,
        name=f"Demo Shop {index:03d}",
        msisdn=msisdn,
        parent=distributor.msisdn,
    )
    assert retailer.id and distributor.id
    await catalog.set_agreement(
        core,
        actor=actor,
        seller_id=distributor.id,
        buyer_id=retailer.id,
        discount_bps=DISTRIBUTOR_TO_RETAILER_BPS,
    )
    await stock.set_credit_limit(
        core,
        actor=actor,
        seller_ref=distributor.msisdn,
        buyer_ref=msisdn,
        limit_minor=RETAILER_CREDIT_LIMIT_MINOR,
    )
    await _once(
        stock.deposit(
            core,
            actor=actor,
            receiver_ref=distributor.msisdn,
            payer_ref=msisdn,
            amount_minor=RETAILER_DEPOSIT_MINOR,
            reference=f"demo-deposit-{index}",
        )
    )
    for code in operators:
        low = index == LOW_STOCK_RETAILER and code == LOW_STOCK_OPERATOR
        await stock.sell(
            core,
            actor=actor,
            seller_ref=distributor.msisdn,
            buyer_ref=msisdn,
            operator_code=code,
            face_minor=LOW_STOCK_MINOR if low else RETAILER_STOCK_MINOR,
            key=f"demo-stock-{index}-{code}",
        )


async def _once(operation: Awaitable[object]) -> None:
    """Await an operation whose repeat is refused as a duplicate: seeding is re-runnable."""
    with contextlib.suppress(DuplicateReference):
        await operation
