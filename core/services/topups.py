"""Confirming a top-up: the guards, the reservation and the request, in one SQL transaction.

Invariant: a confirmed top-up exists exactly when its stock is reserved (same transaction), and it
is delivered by the worker (core/services/delivery.py), never here. The caller has checked the PIN.
Its id (:func:`new_topup_id`) is the reservation id, the job id stem and the provider's reference.
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.context import Core
from core.errors import (
    InsufficientStock,
    InvalidAmount,
    LimitExceeded,
    NotFound,
    NotPermitted,
    RepeatNeedsConfirmation,
)
from core.jobs.queue import JobQueue
from core.models import Operator, Party, Product, ProductKind, Role, Topup, TopupState
from core.models.types import utcnow
from core.money import airtime_asset
from core.msisdn import normalize
from core.services.catalog import check_airtime_amount, detect_operator
from core.services.ledger import Overdraft
from core.services.parties import ensure_active, get_party

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_topup_id() -> str:
    """``T`` + 15 Crockford base32 characters: 34 bits of seconds, then 41 random bits.

    Sortable by time, short enough to read out on a USSD screen, and a collision needs two of the
    2^41 random values to meet in the same second.
    """
    value = (int(time.time()) & (2**34 - 1)) << 41 | secrets.randbits(41)
    chars = [_CROCKFORD[(value >> shift) & 31] for shift in range(70, -1, -5)]
    return "T" + "".join(chars)


async def request_topup(
    core: Core,
    *,
    party_id: int,
    msisdn: str,
    channel: str,
    product_code: str | None = None,
    amount_minor: int | None = None,
    client_key: str | None = None,
    confirm_repeat: bool = False,
) -> Topup:
    """Reserve stock for a top-up and record it; the same ``client_key`` returns the same top-up.

    Airtime: ``amount_minor`` within the product's range (``product_code`` optional). Bundles:
    ``product_code``, priced by the catalog. Raises InputError subclasses for the user to correct,
    Refused subclasses for rules (stock, daily limit, a repeat to confirm), NotFound.
    """
    number = normalize(msisdn, country=core.settings.country)
    async with core.transaction() as session:
        # The party's row lock makes its guards and reservation one step: two concurrent top-ups
        # of one retailer cannot both pass the daily limit.
        party = await get_party(session, party_id, country=core.settings.country, lock=True)
        if client_key is not None and (earlier := await _by_client_key(session, client_key)):
            return earlier
        ensure_active(party)
        if party.role != Role.RETAILER:
            raise NotPermitted(reason="only a retailer tops up customers")
        operator = await detect_operator(session, number)
        product, amount = await _product_and_amount(session, operator, product_code, amount_minor)
        await _check_daily_limit(core, session, party, amount, operator.currency)
        if not confirm_repeat:
            await _check_repeat(core, session, party, number, product, amount, operator.currency)
        topup = Topup(
            id=new_topup_id(),
            party_id=party.id or 0,
            msisdn=number,
            operator_code=operator.code,
            product_code=product.code,
            kind=product.kind,
            amount_minor=amount,
            currency=operator.currency,
            channel=channel,
            client_key=client_key,
        )
        asset = airtime_asset(operator.code)
        try:
            await core.ledger.reserve(
                session,
                reservation_id=topup.id,
                party_id=topup.party_id,
                asset=asset,
                amount_minor=amount,
            )
        except Overdraft as exc:
            raise InsufficientStock(
                party=party.label,
                asset=asset,
                available_minor=exc.available_minor,
                needed_minor=amount,
                currency=operator.currency,
            ) from None
        session.add(topup)
    return topup


async def confirm_topup(core: Core, queue: JobQueue, **request: Any) -> Topup:
    """:func:`request_topup`, then its delivery job, enqueued after the commit. If the enqueue
    fails (Redis away, a crash just here) the sweeper enqueues it from the row."""
    topup = await request_topup(core, **request)
    if topup.state == TopupState.RESERVED and topup.sends == 0:
        await queue.deliver(topup.id, fresh=True)
    return topup


async def _by_client_key(session: AsyncSession, client_key: str) -> Topup | None:
    query = select(Topup).where(col(Topup.client_key) == client_key)
    return (await session.execute(query)).scalar()


async def _product_and_amount(
    session: AsyncSession, operator: Operator, product_code: str | None, amount_minor: int | None
) -> tuple[Product, int]:
    code = product_code or f"{operator.code}:{ProductKind.AIRTIME}"
    product = await session.get(Product, code)
    if product is None or not product.active:
        raise NotFound(kind="product", key=code)
    if product.operator_code != operator.code:
        raise InvalidAmount(reason=f"{product.name} is not sold for {operator.name} numbers")
    if product.kind == ProductKind.AIRTIME:
        if amount_minor is None:
            raise InvalidAmount(reason="an airtime top-up needs an amount")
        check_airtime_amount(product, amount_minor, operator.currency)
        return product, amount_minor
    if amount_minor is not None and amount_minor != product.price_minor:
        raise InvalidAmount(reason=f"{product.name} has a fixed price")
    return product, product.price_minor or 0


def day_start(now: datetime, zone: str) -> datetime:
    """Midnight of ``now``'s local day in ``zone``, as an aware datetime."""
    local = now.astimezone(ZoneInfo(zone))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


async def _check_daily_limit(
    core: Core, session: AsyncSession, party: Party, amount: int, currency: str
) -> None:
    limit = (
        party.daily_limit_minor
        if party.daily_limit_minor is not None
        else core.settings.topup_daily_limit_minor
    )
    used = (
        await session.execute(
            select(func.coalesce(func.sum(Topup.amount_minor), 0)).where(
                col(Topup.party_id) == party.id,
                col(Topup.created_at) >= day_start(utcnow(), core.settings.timezone),
                col(Topup.state) != TopupState.FAILED,
            )
        )
    ).scalar_one()
    if used + amount > limit:
        raise LimitExceeded(
            party=party.label,
            available_minor=max(limit - used, 0),
            needed_minor=amount,
            currency=currency,
        )


async def _check_repeat(
    core: Core,
    session: AsyncSession,
    party: Party,
    msisdn: str,
    product: Product,
    amount: int,
    currency: str,
) -> None:
    window_s = core.settings.topup_repeat_window_s
    since = utcnow() - timedelta(seconds=window_s)
    earlier = (
        await session.execute(
            select(col(Topup.created_at))
            .where(
                col(Topup.party_id) == party.id,
                col(Topup.created_at) >= since,
                col(Topup.msisdn) == msisdn,
                col(Topup.product_code) == product.code,
                col(Topup.amount_minor) == amount,
                col(Topup.state) != TopupState.FAILED,
            )
            .order_by(col(Topup.created_at).desc())
            .limit(1)
        )
    ).scalar()
    if earlier is not None:
        raise RepeatNeedsConfirmation(
            msisdn=msisdn,
            amount_minor=amount,
            currency=currency,
            seconds_ago=max(int((utcnow() - earlier).total_seconds()), 0),
        )
