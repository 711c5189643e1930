"""What a delivery step knows of a top-up: its open row and its retailer, read in one query.

Plain objects, not ORM instances, and the query built once: delivery is the worker's hot path
(docs/BENCHMARKS.md). A new top-up's first job carries the same fields (:func:`snapshot`), so its
first step reads nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.models import Party, Topup
from core.models.topup import OPEN_STATES
from core.services import identities
from core.services.notify import TELEGRAM

topup_t = Topup.__table__  # type: ignore[attr-defined]
party_t = Party.__table__  # type: ignore[attr-defined]


@dataclass(slots=True)
class OpenTopup:
    """What a step needs of a top-up row."""

    id: str
    party_id: int
    msisdn: str
    operator_code: str
    product_code: str
    kind: str
    amount_minor: int
    currency: str
    state: str
    sends: int
    checks: int
    created_at: datetime
    unknown_since: datetime | None
    provider_ref: str | None
    provider: str | None  # the account holding it (core/routing/)
    providers_tried: str | None


_OPEN_COLUMNS = [topup_t.c[name] for name in OpenTopup.__dataclass_fields__]


class Job(NamedTuple):
    """A top-up with what its notifications need of its retailer (one query)."""

    topup: OpenTopup
    shop_name: str
    shop_msisdn: str
    language: str
    telegram_user_id: str | None  # its address on Telegram (core/services/identities.py)
    # (sends, checks) as this step found them: it may only record its successor over exactly
    # that, so a stale run (a replay, a late copy) cannot roll the row back.
    expected: tuple[int, int] = (0, 0)


_LOAD = select(
    *_OPEN_COLUMNS,
    party_t.c.name,
    party_t.c.msisdn,
    party_t.c.language,
    identities.address_column(TELEGRAM),
).where(topup_t.c.id == bindparam("id"), party_t.c.id == topup_t.c.party_id)


def snapshot(
    topup: Topup,
    *,
    shop_name: str,
    shop_msisdn: str,
    language: str,
    telegram_user_id: str | None,
) -> tuple[Any, ...]:
    """What the first step of a new top-up needs, carried in its job (see :func:`unpack`)."""
    fields = tuple(getattr(topup, name) for name in OpenTopup.__dataclass_fields__)
    return (*fields, shop_name, shop_msisdn, language, telegram_user_id)


def unpack(carried: tuple[Any, ...]) -> Job:
    """A :func:`snapshot` (or a row of the load query) as a job."""
    *fields, name, msisdn, language, telegram_user_id = carried
    return Job(OpenTopup(*fields), name, msisdn, language, telegram_user_id)


async def load(sessions: async_sessionmaker[AsyncSession], topup_id: str) -> Job:
    async with sessions() as session:
        row = (await session.execute(_LOAD, {"id": topup_id})).first()
    if row is None:
        raise LookupError(topup_id)
    return unpack(tuple(row))


def unmoved(job: Job) -> Any:
    """The row is still open and still where this step found it (a guard for every write)."""
    return and_(
        topup_t.c.id == job.topup.id,
        topup_t.c.state.in_(OPEN_STATES),
        topup_t.c.sends == job.expected[0],
        topup_t.c.checks == job.expected[1],
    )
