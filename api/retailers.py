"""A distributor's retailers: list them with their stock, add one, suspend or reactivate one, read
one's balance. Another party's retailer is 404, exactly as one that does not exist."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from api.account import balance_of
from api.endpoint import DISTRIBUTOR, Call, Endpoint
from api.models import Balance, Body, Out, Query, RetailerPath
from core.errors import NotFound
from core.models import Party, PartyStatus, Role, Scope
from core.services import parties, reports, stock
from core.services.audit import Actor

CHANNEL = "api"


async def own_retailer(call: Call, retailer_id: int) -> Party:
    """The retailer, if it is the key's distributor's own; else NotFound, as if it did not
    exist (nothing tells a key about another party's parties)."""
    async with call.core.sessions() as session:
        party = await session.get(Party, retailer_id)
    if party is None or party.parent_id != call.who.party_id or party.role != Role.RETAILER:
        raise NotFound(kind="retailer", key=str(retailer_id))
    return party


class Retailer(Out):
    id: int
    name: str
    msisdn: str
    status: str
    pin_locked: bool
    stock_minor: int = Field(description="available stock, all operators (face value)")
    lowest_minor: int | None = Field(description="the smallest stock of an operator it carries")
    last_topup_at: datetime | None


class Retailers(Out):
    items: list[Retailer]
    next_offset: int | None


class Page(Query):
    limit: int = Field(default=100, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=10**6)


async def list_retailers(call: Call) -> Retailers:
    asked: Page = call.query
    rows = await reports.retailers_of(
        call.core, distributor_id=call.who.party_id, limit=asked.limit + 1, offset=asked.offset
    )
    more = len(rows) > asked.limit
    return Retailers(
        items=[
            Retailer(
                id=r.party_id,
                name=r.name,
                msisdn=r.msisdn,
                status=r.status,
                pin_locked=r.pin_locked,
                stock_minor=r.stock_minor,
                lowest_minor=r.lowest_minor,
                last_topup_at=r.last_topup_at,
            )
            for r in rows[: asked.limit]
        ],
        next_offset=asked.offset + asked.limit if more else None,
    )


class NewRetailer(Body):
    name: str = Field(min_length=1, max_length=120)
    msisdn: str = Field(min_length=3, max_length=32, description="its phone number, any form")
    language: Literal["en", "fr", "sw"] = "en"


class Added(Out):
    id: int
    name: str
    msisdn: str
    status: str
    language: str
    pin_set: bool = Field(description="false: set its PIN (`airgate party set-pin`) for USSD")


def _added(party: Party) -> Added:
    return Added(
        id=party.id or 0,
        name=party.name,
        msisdn=party.msisdn,
        status=party.status,
        language=party.language,
        pin_set=party.pin_hash is not None,
    )


async def add_retailer(call: Call) -> Added:
    asked: NewRetailer = call.body
    party = await parties.add_party(
        call.core,
        actor=Actor.party(call.who.party_id, CHANNEL),
        role=Role.RETAILER,
        name=asked.name,
        msisdn=asked.msisdn,
        parent_ref=call.who.party_id,
        language=asked.language,
    )
    return _added(party)


async def _set_status(call: Call, status: PartyStatus) -> Added:
    retailer = await own_retailer(call, call.path.retailer_id)
    party = await parties.set_status(
        call.core,
        actor=Actor.party(call.who.party_id, CHANNEL),
        ref=retailer.id or 0,
        status=status,
    )
    return _added(party)


async def suspend_retailer(call: Call) -> Added:
    return await _set_status(call, PartyStatus.SUSPENDED)


async def activate_retailer(call: Call) -> Added:
    return await _set_status(call, PartyStatus.ACTIVE)


async def retailer_balance(call: Call) -> Balance:
    retailer = await own_retailer(call, call.path.retailer_id)
    return balance_of(await stock.balance(call.core, ref=retailer.id or 0))


ENDPOINTS = (
    Endpoint(
        "GET",
        "/retailers",
        list_retailers,
        "The distributor's retailers by name, with their stock and last top-up",
        Scope.READ,
        roles=DISTRIBUTOR,
        response=Retailers,
        query=Page,
        tag="distributor",
        errors=(422,),
    ),
    Endpoint(
        "POST",
        "/retailers",
        add_retailer,
        "Add a retailer under the distributor",
        Scope.MANAGE,
        roles=DISTRIBUTOR,
        response=Added,
        status=201,
        body=NewRetailer,
        tag="distributor",
    ),
    Endpoint(
        "GET",
        "/retailers/{retailer_id}/balance",
        retailer_balance,
        "One retailer's balance",
        Scope.READ,
        roles=DISTRIBUTOR,
        response=Balance,
        path_params=RetailerPath,
        tag="distributor",
        errors=(404, 422),
    ),
    Endpoint(
        "POST",
        "/retailers/{retailer_id}/suspend",
        suspend_retailer,
        "Suspend a retailer: it can do nothing until reactivated",
        Scope.MANAGE,
        roles=DISTRIBUTOR,
        response=Added,
        path_params=RetailerPath,
        tag="distributor",
    ),
    Endpoint(
        "POST",
        "/retailers/{retailer_id}/activate",
        activate_retailer,
        "Reactivate a suspended retailer",
        Scope.MANAGE,
        roles=DISTRIBUTOR,
        response=Added,
        path_params=RetailerPath,
        tag="distributor",
    ),
)
