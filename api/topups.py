"""Top-ups by API: the same service as the chat channels (core/services/topups.py: the lifecycle,
the daily limit, the repeat guard, stock), keyed by the request's Idempotency-Key; one top-up by
reference; a party's top-ups by date and state, newest first, a page at a time.

A distributor's key reads its retailers' top-ups; only a retailer sends them.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, Field, field_validator, model_validator
from sqlalchemy import and_, or_, select

from api.endpoint import RETAILER, Call, Endpoint
from api.models import Body, Out, Query
from core.errors import NotFound
from core.models import Party, Scope, TopupState
from core.models import Topup as TopupRow
from core.msisdn import masked
from core.services import topups

CHANNEL = "api"  # a top-up's channel, as "ussd" and "telegram"
PRODUCT = r"^[a-z0-9][a-z0-9._:-]{0,63}$"
MAX_AMOUNT_MINOR = 10**12

topup_t = TopupRow.__table__  # type: ignore[attr-defined]
party_t = Party.__table__  # type: ignore[attr-defined]


class TopupRequest(Body):
    """Airtime: ``msisdn`` and ``amount_minor`` (within the operator's range; ``product``
    optional). A bundle: ``msisdn`` and ``product`` (its code; the catalog prices it)."""

    msisdn: str = Field(min_length=3, max_length=32, description="the customer's number, any form")
    amount_minor: int | None = Field(default=None, ge=1, le=MAX_AMOUNT_MINOR)
    product: str | None = Field(default=None, pattern=PRODUCT)
    confirm_repeat: bool = Field(
        default=False,
        description="send it although the same top-up was made within the repeat window",
    )

    @model_validator(mode="after")
    def _what(self) -> TopupRequest:
        if self.amount_minor is None and self.product is None:
            raise ValueError("give amount_minor (airtime) or product (a bundle)")
        return self


class Topup(Out):
    id: str = Field(description="our reference")
    state: TopupState
    retailer_id: int
    msisdn: str = Field(description="the customer's number, masked")
    operator: str
    product: str
    kind: str
    amount_minor: int
    currency: str
    channel: str
    created_at: datetime
    final_at: datetime | None


def shown(row: Any) -> Topup:
    return Topup(
        id=row.id,
        state=TopupState(row.state),
        retailer_id=row.party_id,
        msisdn=masked(row.msisdn),
        operator=row.operator_code,
        product=row.product_code,
        kind=row.kind,
        amount_minor=row.amount_minor,
        currency=row.currency,
        channel=row.channel,
        created_at=row.created_at,
        final_at=row.final_at,
    )


async def send_topup(call: Call) -> Topup:
    asked: TopupRequest = call.body
    row = await topups.confirm_topup(
        call.core,
        call.api.queue,
        party_id=call.who.party_id,
        msisdn=asked.msisdn,
        channel=CHANNEL,
        product_code=asked.product,
        amount_minor=asked.amount_minor,
        client_key=call.client_key,
        confirm_repeat=asked.confirm_repeat,
    )
    return shown(row)


class TopupPath(Query):
    ref: str = Field(pattern=r"^T[0-9A-Z]{15}$", description="our reference, T + 15 characters")


_COLUMNS = [*topup_t.c]


def _visible_to(call: Call) -> Any:
    """Top-ups the key's party may read: its own, or, for a distributor, its retailers'."""
    mine = topup_t.c.party_id == call.who.party_id
    theirs = topup_t.c.party_id.in_(
        select(party_t.c.id).where(party_t.c.parent_id == call.who.party_id)
    )
    return or_(mine, theirs)


async def get_topup(call: Call) -> Topup:
    ref = call.path.ref
    async with call.core.sessions() as session:
        row = (
            await session.execute(select(*_COLUMNS).where(topup_t.c.id == ref, _visible_to(call)))
        ).first()
    if row is None:
        raise NotFound(kind="top-up", key=ref)
    return shown(row)


class TopupsQuery(Query):
    since: AwareDatetime | None = Field(default=None, description="created at or after (RFC 3339)")
    until: AwareDatetime | None = Field(default=None, description="created before (RFC 3339)")
    state: TopupState | None = None
    retailer_id: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="a distributor's: one of its retailers"
    )
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(
        default=None, max_length=120, description="next_cursor of the previous page"
    )

    @field_validator("cursor")
    @classmethod
    def _readable(cls, value: str | None) -> str | None:
        if value is not None:
            decode_cursor(value)
        return value


def encode_cursor(at: datetime, ref: str) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{ref}".encode()).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        at, ref = raw.split("|")
        when = datetime.fromisoformat(at)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError("not a cursor this API gave") from exc
    if when.tzinfo is None:
        raise ValueError("not a cursor this API gave")
    return when, ref


class TopupPage(Out):
    items: list[Topup]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null: the last")


async def list_topups(call: Call) -> TopupPage:
    asked: TopupsQuery = call.query
    where = [_visible_to(call)]
    if asked.retailer_id is not None:
        where.append(topup_t.c.party_id == asked.retailer_id)
    if asked.state is not None:
        where.append(topup_t.c.state == asked.state)
    if asked.since is not None:
        where.append(topup_t.c.created_at >= asked.since)
    if asked.until is not None:
        where.append(topup_t.c.created_at < asked.until)
    if asked.cursor is not None:
        at, ref = decode_cursor(asked.cursor)
        where.append(
            or_(
                topup_t.c.created_at < at,
                and_(topup_t.c.created_at == at, topup_t.c.id < ref),
            )
        )
    query = (
        select(*_COLUMNS)
        .where(*where)
        .order_by(topup_t.c.created_at.desc(), topup_t.c.id.desc())
        .limit(asked.limit + 1)
    )
    async with call.core.sessions() as session:
        rows = (await session.execute(query)).all()
    more = len(rows) > asked.limit
    rows = rows[: asked.limit]
    after = encode_cursor(rows[-1].created_at, rows[-1].id) if more else None
    return TopupPage(items=[shown(r) for r in rows], next_cursor=after)


ENDPOINTS = (
    Endpoint(
        "POST",
        "/topups",
        send_topup,
        "Send a top-up (airtime amount or a bundle): reserved now, delivered by the worker",
        Scope.TOPUP,
        roles=RETAILER,
        response=Topup,
        status=202,
        body=TopupRequest,
        tag="topups",
        description="The same guards as every channel: the retailer's stock, its daily limit, "
        "the repeat window (confirm_repeat). Poll GET /topups/{ref} for the outcome.",
    ),
    Endpoint(
        "GET",
        "/topups/{ref}",
        get_topup,
        "One top-up by our reference",
        Scope.READ,
        response=Topup,
        path_params=TopupPath,
        tag="topups",
        errors=(404, 422),
    ),
    Endpoint(
        "GET",
        "/topups",
        list_topups,
        "Top-ups, newest first, by date and state, a page at a time",
        Scope.READ,
        response=TopupPage,
        query=TopupsQuery,
        tag="topups",
        errors=(422,),
    ),
)
