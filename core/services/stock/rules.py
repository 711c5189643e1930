"""What every stock operation checks first: a positive amount, a well-formed reference, a known
currency, and the seller–buyer pair (the buyer's party row locked first, so what the operation
reads of the buyer cannot change before it commits); and what an operation returns."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Core
from core.errors import InputError, InvalidAmount, NotPermitted
from core.models import Operator, Party
from core.services.audit import Actor
from core.services.parties import ensure_active, get_party

operator_t = Operator.__table__  # type: ignore[attr-defined]

# References and idempotency keys: what payment systems and POS ids use; '#' is the ledger's.
REFERENCE = re.compile(r"[A-Za-z0-9._:/-]{1,64}")


def positive(amount_minor: int) -> None:
    if amount_minor <= 0:
        raise InvalidAmount(reason="the amount must be more than zero")


def checked_reference(reference: str, *, what: str = "a reference") -> str:
    reference = reference.strip()
    if not REFERENCE.fullmatch(reference):
        raise InputError(reason=f"{what} is 1 to 64 letters, digits or . _ : / -")
    return reference


async def known_currency(session: AsyncSession, currency: str) -> str:
    known = set((await session.execute(select(operator_t.c.currency).distinct())).scalars())
    if currency not in known:
        raise InputError(
            reason=f"{currency!r} is not a currency of any operator ({', '.join(sorted(known))})"
        )
    return currency


async def seller_and_buyer(
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
async def unit(core: Core, within: AsyncSession | None) -> AsyncIterator[AsyncSession]:
    """The caller's transaction when it passes one (it commits), else a new one that moves money
    (within the work's deadline: core/context.py, Core.money)."""
    if within is not None:
        yield within
        return
    async with core.money() as session:
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
