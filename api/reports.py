"""A distributor's sales summary and its broadcasts to its retailers (core/services/reports.py,
core/services/broadcast/): the same services as the bot's and USSD's menus."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, model_validator

from api.endpoint import ANY_ROLE, DISTRIBUTOR, Call, Endpoint
from api.models import Body, Out, Query
from core.errors import NotFound
from core.models import Broadcast, Scope
from core.services import broadcast, reports
from core.services.audit import Actor
from core.services.daily.detail import detail as day_detail

CHANNEL = "api"


class Sales(Out):
    topups: int = Field(description="delivered top-ups of the distributor's retailers today")
    topup_minor: int = Field(description="their total")
    open_topups: int = Field(description="still reserved or unknown")


async def sales_today(call: Call) -> Sales:
    found = await reports.today_sales(call.core, distributor_id=call.who.party_id)
    return Sales(topups=found.topups, topup_minor=found.topup_minor, open_topups=found.open_topups)


class DayQuery(Query):
    day: date | None = Field(default=None, description="a local day (YYYY-MM-DD); default today")


class ProductSales(Out):
    operator: str
    product: str
    delivered: int
    delivered_minor: int
    failed: int
    failed_minor: int
    open: int
    open_minor: int


class RetailerSales(Out):
    id: int
    name: str
    delivered: int
    delivered_minor: int
    low: bool


class DaySales(Out):
    """A local day's figures, of the party and (a distributor's) its retailers' top-ups."""

    day: date
    delivered: int
    delivered_minor: int
    failed: int
    open: int
    margin_minor: int = Field(description="what the party earned on the stock it sold that day")
    products: list[ProductSales]
    by_operator: dict[str, int] = Field(description="delivered value per operator")
    by_hour: list[int] = Field(description="delivered value per local hour, 00:00 first")
    retailers: list[RetailerSales] = Field(description="a distributor's, by delivered value")


async def sales_of_day(call: Call) -> DaySales:
    zone = ZoneInfo(call.core.settings.timezone)
    day = call.query.day or datetime.now(zone).date()
    found = await day_detail(call.core, day=day, party_id=call.who.party_id)
    party = found.party
    return DaySales(
        day=day,
        delivered=party.delivered,
        delivered_minor=party.delivered_minor,
        failed=party.failed,
        open=party.open,
        margin_minor=party.margin_minor,
        products=[
            ProductSales.model_validate(line, from_attributes=True) for line in found.products
        ],
        by_operator=found.by_operator,
        by_hour=found.by_hour,
        retailers=[
            RetailerSales(
                id=r.party_id,
                name=r.name,
                delivered=r.delivered,
                delivered_minor=r.delivered_minor,
                low=r.low,
            )
            for r in found.retailers
        ],
    )


class NewBroadcast(Body):
    text: str = Field(min_length=1, max_length=broadcast.MAX_TEXT)
    audience: Literal["all", "low", "tag"] = Field(
        default="all",
        description="all retailers, those low on an operator's stock (operator), or those with "
        "a tag or region (tag)",
    )
    operator: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9._:-]{0,31}$")
    tag: str | None = Field(default=None, min_length=1, max_length=40)

    @model_validator(mode="after")
    def _complete(self) -> NewBroadcast:
        if self.audience == "low" and not self.operator:
            raise ValueError("audience 'low' needs operator")
        if self.audience == "tag" and not self.tag:
            raise ValueError("audience 'tag' needs tag")
        if not self.text.split():
            raise ValueError("the message is empty")
        return self

    def target(self) -> broadcast.Audience:
        value = {"low": self.operator, "tag": (self.tag or "").strip().lower()}
        return broadcast.Audience(self.audience, value.get(self.audience) or "")


class BroadcastOut(Out):
    id: int
    total: int
    telegram: int = Field(description="recipients reached on Telegram")
    sms: int = Field(description="recipients reached by SMS")


async def send_broadcast(call: Call) -> BroadcastOut:
    asked: NewBroadcast = call.body
    made = await broadcast.create(
        call.core,
        distributor_id=call.who.party_id,
        text=asked.text,
        audience=asked.target(),
        key=call.client_key,
        actor=Actor.party(call.who.party_id, CHANNEL),
    )
    await call.api.queue.broadcast(made.id)
    preview = made.preview
    return BroadcastOut(id=made.id, total=preview.total, telegram=preview.telegram, sms=preview.sms)


class BroadcastPath(Query):
    broadcast_id: int = Field(ge=1, le=2**62)


class Progress(Out):
    id: int
    total: int
    sent: int
    failed: int
    blocked: int
    unconfirmed: int
    pending: int
    done: bool


async def get_broadcast(call: Call) -> Progress:
    wanted = call.path.broadcast_id
    async with call.core.sessions() as session:
        row = await session.get(Broadcast, wanted)
    if row is None or row.party_id != call.who.party_id:
        raise NotFound(kind="broadcast", key=str(wanted))
    r = await broadcast.report(call.core, wanted)
    return Progress(
        id=r.broadcast_id,
        total=r.total,
        sent=r.sent,
        failed=r.failed,
        blocked=r.blocked,
        unconfirmed=r.unconfirmed,
        pending=r.pending,
        done=r.done,
    )


ENDPOINTS = (
    Endpoint(
        "GET",
        "/sales/today",
        sales_today,
        "Today's sales of the distributor's retailers (local day)",
        Scope.READ,
        roles=DISTRIBUTOR,
        response=Sales,
        tag="distributor",
        errors=(),
    ),
    Endpoint(
        "GET",
        "/sales",
        sales_of_day,
        "A local day's sales: top-ups by product, operator and hour, margin, retailers ranked",
        Scope.READ,
        roles=ANY_ROLE,
        response=DaySales,
        query=DayQuery,
        tag="reports",
        errors=(422,),
    ),
    Endpoint(
        "POST",
        "/broadcasts",
        send_broadcast,
        "Send a message to the distributor's retailers (Telegram where linked, else SMS)",
        Scope.MANAGE,
        roles=DISTRIBUTOR,
        response=BroadcastOut,
        status=202,
        body=NewBroadcast,
        tag="distributor",
    ),
    Endpoint(
        "GET",
        "/broadcasts/{broadcast_id}",
        get_broadcast,
        "A broadcast's progress",
        Scope.READ,
        roles=DISTRIBUTOR,
        response=Progress,
        path_params=BroadcastPath,
        tag="distributor",
        errors=(404, 422),
    ),
)
