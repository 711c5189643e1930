"""Confirming a top-up: the guards, the reservation and the request, in one SQL transaction.

Invariant: a confirmed top-up exists exactly when its stock is reserved (same transaction), and it
is delivered by the worker (core/services/delivery.py), never here. The caller has checked the PIN.
A reservation that takes the retailer's stock below its threshold owes it a low-stock alert, written
in the same transaction (core/services/alerts.py).
Its id (:func:`new_topup_id`) is the reservation id, the job id stem and the provider's reference.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import String, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core import deadline
from core.catalog_snapshot import Catalog
from core.context import Core
from core.errors import (
    IdempotencyConflict,
    InsufficientStock,
    InvalidAmount,
    LimitExceeded,
    NotFound,
    NotPermitted,
    PartyInactive,
    RepeatNeedsConfirmation,
)
from core.jobs.queue import JobQueue
from core.ledger import Overdraft
from core.models import Operator, Party, PartyStatus, Product, ProductKind, Role, Topup, TopupState
from core.models.types import utcnow
from core.money import airtime_asset
from core.msisdn import normalize
from core.services import alerts, delivery, identities
from core.services.catalog import check_airtime_amount
from core.services.notify import TELEGRAM, Message

party_t = Party.__table__  # type: ignore[attr-defined]
topup_t = Topup.__table__  # type: ignore[attr-defined]

# Built once: a top-up request is the hot path, and composing SQL costs more CPU than running it.
_LOCK_PARTY = (
    select(
        party_t.c.role,
        party_t.c.status,
        party_t.c.name,
        party_t.c.msisdn,
        party_t.c.daily_limit_minor,
        party_t.c.language,
        identities.address_column(TELEGRAM),
        party_t.c.low_stock_minor,
    )
    .where(party_t.c.id == bindparam("party_id"))
    .with_for_update(key_share=True)
)
_RETAILER_COLUMNS = len(_LOCK_PARTY.selected_columns)  # _Retailer's fields after its id
# On PostgreSQL the same statement bounds the transaction's lock waits by the work's deadline
# (core/deadline.py; NULL: as configured), sparing Core.money a round trip on the hot path. In
# the select list, set_config runs before the row lock is waited for.
_LOCK_PARTY_PG = _LOCK_PARTY.add_columns(
    func.set_config(
        "lock_timeout",
        func.coalesce(bindparam("lock_wait", type_=String), func.current_setting("lock_timeout")),
        True,
    )
)
# Today's total, and the latest same top-up inside the repeat window, of one party.
_GUARDS = select(
    func.coalesce(
        func.sum(topup_t.c.amount_minor).filter(topup_t.c.created_at >= bindparam("today")), 0
    ),
    func.max(topup_t.c.created_at).filter(
        topup_t.c.created_at >= bindparam("repeat_since"),
        topup_t.c.msisdn == bindparam("msisdn"),
        topup_t.c.product_code == bindparam("product_code"),
        topup_t.c.amount_minor == bindparam("amount"),
    ),
).where(
    topup_t.c.party_id == bindparam("party_id"),
    topup_t.c.created_at >= bindparam("since"),
    topup_t.c.state != TopupState.FAILED,
)
_INSERT = topup_t.insert()

# What "now" is for a request: its record, the daily limit's local day and the repeat window. A
# seam for tests that cross a local midnight (tests/integration/test_day_boundary.py).
clock: Callable[[], datetime] = utcnow

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
    """Reserve stock for a top-up and record it; the same ``client_key`` returns the same top-up
    (IdempotencyConflict if that key was used for another party, number, product or amount).

    Airtime: ``amount_minor`` within the product's range (``product_code`` optional). Bundles:
    ``product_code``, priced by the catalog. Raises InputError subclasses for the user to correct,
    Refused subclasses for rules (stock, daily limit, a repeat to confirm), NotFound. A low-stock
    alert it owes waits for the sweeper (:func:`confirm_topup` enqueues it at once).
    """
    topup, _retailer, _created, _alerts = await _request(
        core,
        party_id=party_id,
        msisdn=msisdn,
        channel=channel,
        product_code=product_code,
        amount_minor=amount_minor,
        client_key=client_key,
        confirm_repeat=confirm_repeat,
    )
    return topup


async def _request(
    core: Core,
    *,
    party_id: int,
    msisdn: str,
    channel: str,
    product_code: str | None,
    amount_minor: int | None,
    client_key: str | None,
    confirm_repeat: bool,
) -> tuple[Topup, _Retailer, bool, list[Message]]:
    number = normalize(msisdn, country=core.settings.country)
    catalog = await core.catalog.get()
    operator = catalog.detect(number)
    product, amount = _product_and_amount(catalog, operator, product_code, amount_minor)
    now = clock()
    # In the retailer's queue, then within the hop's deadline (core/context.py, Core.money).
    async with core.money(payer=party_id, sets_lock_timeout=True) as session:
        # The party's row lock makes its guards and reservation one step: two concurrent top-ups
        # of one retailer cannot both pass the daily limit.
        party = await _locked_party(core, session, party_id)
        if client_key is not None and (earlier := await _by_client_key(session, client_key)):
            _same_request(earlier, party_id, number, product.code, amount, client_key)
            return earlier, party, False, []
        _may_top_up(party)
        await _check_guards(
            core,
            session,
            party,
            now=now,
            msisdn=number,
            product=product,
            amount=amount,
            currency=operator.currency,
            confirm_repeat=confirm_repeat,
        )
        topup = Topup(
            id=new_topup_id(),
            party_id=party_id,
            msisdn=number,
            operator_code=operator.code,
            product_code=product.code,
            kind=product.kind,
            amount_minor=amount,
            currency=operator.currency,
            channel=channel,
            client_key=client_key,
            state=TopupState.RESERVED,
            due_at=now,
            created_at=now,
        )
        return topup, party, True, await _reserve(core, session, topup, party, operator)


def _same_request(
    earlier: Topup, party_id: int, number: str, product_code: str, amount: int, client_key: str
) -> None:
    """A client key used again names the same top-up, or it is a conflict."""
    same = (earlier.party_id, earlier.msisdn, earlier.product_code) == (
        party_id,
        number,
        product_code,
    )
    if not same or earlier.amount_minor != amount:
        raise IdempotencyConflict(key=client_key)


def _may_top_up(party: _Retailer) -> None:
    if party.status != PartyStatus.ACTIVE:
        raise PartyInactive(party=party.label, status=party.status)
    if party.role != Role.RETAILER:
        raise NotPermitted(reason="only a retailer tops up customers")


async def _reserve(
    core: Core, session: AsyncSession, topup: Topup, party: _Retailer, operator: Operator
) -> list[Message]:
    """Hold the retailer's stock under the top-up's id and write the top-up; the low-stock
    messages this owes are told once per crossing, in this transaction (core/services/alerts.py).
    """
    asset = airtime_asset(operator.code)
    try:
        posting = await core.ledger.reserve(
            session,
            reservation_id=topup.id,
            party_id=topup.party_id,
            asset=asset,
            amount_minor=topup.amount_minor,
        )
    except Overdraft as exc:
        raise InsufficientStock(
            party=party.label,
            asset=asset,
            available_minor=exc.available_minor,
            needed_minor=topup.amount_minor,
            currency=operator.currency,
        ) from None
    await session.execute(_INSERT, topup.model_dump())
    return await alerts.owe_low_stock(
        core,
        session,
        holder=party.holder,
        posting=posting,
        operator=operator,
        tag=topup.id,
    )


async def confirm_topup(
    core: Core,
    queue: JobQueue,
    *,
    party_id: int,
    msisdn: str,
    channel: str,
    product_code: str | None = None,
    amount_minor: int | None = None,
    client_key: str | None = None,
    confirm_repeat: bool = False,
) -> Topup:
    """:func:`request_topup`, then its delivery job (and the send of a low-stock alert it owes),
    enqueued after the commit. If the enqueue fails (Redis away, a crash just here) the sweeper
    enqueues it from the row.

    The first job carries what delivery needs (:func:`delivery.snapshot`), so the worker's first
    step reads nothing before it sends.
    """
    topup, shop, created, owed = await _request(
        core,
        party_id=party_id,
        msisdn=msisdn,
        channel=channel,
        product_code=product_code,
        amount_minor=amount_minor,
        client_key=client_key,
        confirm_repeat=confirm_repeat,
    )
    if not created:
        # A replayed confirmation: its first job may have sent and died before recording it,
        # so this one looks the reference up before it sends (not fresh).
        if topup.state == TopupState.RESERVED and topup.sends == 0:
            await queue.deliver(topup.id, fresh=False)
    else:
        carried = delivery.snapshot(
            topup,
            shop_name=shop.name,
            shop_msisdn=shop.msisdn,
            language=shop.language,
            telegram_user_id=shop.telegram_user_id,
        )
        await queue.deliver(topup.id, fresh=True, snapshot=carried)
        await alerts.send_owed(queue, owed)
    return topup


async def _by_client_key(session: AsyncSession, client_key: str) -> Topup | None:
    query = select(Topup).where(col(Topup.client_key) == client_key)
    return (await session.execute(query)).scalar()


def _product_and_amount(
    catalog: Catalog, operator: Operator, product_code: str | None, amount_minor: int | None
) -> tuple[Product, int]:
    product = catalog.product(product_code or f"{operator.code}:{ProductKind.AIRTIME}")
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


class _Retailer(NamedTuple):
    id: int
    role: str
    status: str
    name: str
    msisdn: str
    daily_limit_minor: int | None
    language: str
    telegram_user_id: str | None  # its address on Telegram (core/services/identities.py)
    low_stock_minor: int | None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.msisdn})"

    @property
    def holder(self) -> alerts.Holder:
        return alerts.Holder(
            self.id,
            self.role,
            self.msisdn,
            self.language,
            self.telegram_user_id,
            self.low_stock_minor,
        )


async def _locked_party(core: Core, session: AsyncSession, party_id: int) -> _Retailer:
    if core.engine.dialect.name == "postgresql":
        budget = deadline.current()
        wait = None if budget is None else budget.lock_timeout()
        found = await session.execute(_LOCK_PARTY_PG, {"party_id": party_id, "lock_wait": wait})
    else:
        found = await session.execute(_LOCK_PARTY, {"party_id": party_id})
    row = found.first()
    if row is None:
        raise NotFound(kind="party", key=str(party_id))
    return _Retailer(party_id, *row[:_RETAILER_COLUMNS])


def day_start(now: datetime, zone: str) -> datetime:
    """Midnight of ``now``'s local day in ``zone``, in UTC."""
    local = now.astimezone(ZoneInfo(zone))
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


async def _check_guards(
    core: Core,
    session: AsyncSession,
    party: _Retailer,
    *,
    now: datetime,
    msisdn: str,
    product: Product,
    amount: int,
    currency: str,
    confirm_repeat: bool,
) -> None:
    """The daily limit and the repeat guard, from one query over the party's recent top-ups."""
    settings = core.settings
    limit = settings.topup_daily_limit_minor
    if party.daily_limit_minor is not None:
        limit = party.daily_limit_minor
    today = day_start(now, settings.timezone)
    repeat_since = now - timedelta(seconds=settings.topup_repeat_window_s)
    params = {
        "party_id": party.id,
        "today": today,
        "repeat_since": repeat_since,
        "since": min(today, repeat_since),
        "msisdn": msisdn,
        "product_code": product.code,
        "amount": amount,
    }
    used, last_same = (await session.execute(_GUARDS, params)).one()
    if used + amount > limit:
        raise LimitExceeded(
            party=party.label,
            available_minor=max(limit - used, 0),
            needed_minor=amount,
            currency=currency,
        )
    if last_same is not None and not confirm_repeat:
        raise RepeatNeedsConfirmation(
            msisdn=msisdn,
            amount_minor=amount,
            currency=currency,
            seconds_ago=max(int((now - last_same).total_seconds()), 0),
        )
