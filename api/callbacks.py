"""Outcome callbacks: the key's party's URL (register, replace, remove), its signing secret (shown
once: when first registered and when rotated), its delivery log, and sending a delivery again.

Handlers translate to core/services/callbacks; the receiver's side is in docs/API.md#callbacks.
A secret is only ever in the answer to a PUT, which the idempotency store does not keep.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from api.endpoint import Call, Endpoint
from api.models import Body, Out, Query
from core.errors import NotFound
from core.models import CallbackDelivery, CallbackState, Scope
from core.services import callbacks
from core.services.audit import Actor

RECENT = 10  # deliveries shown with the endpoint


class CallbackBody(Body):
    url: str = Field(
        min_length=1,
        max_length=2048,
        description="an HTTPS URL to a public address; replaces the party's URL if it has one",
    )


class CallbackEndpoint(Out):
    url: str
    created_at: datetime
    updated_at: datetime
    previous_secret_until: datetime | None = Field(
        description="after a rotation: the previous secret also signs until then"
    )


class Registered(CallbackEndpoint):
    created: bool = Field(description="true: a new endpoint (and its secret)")
    secret: str | None = Field(
        description="the signing secret, shown only now: on creation and rotation, else null"
    )


class Delivery(Out):
    id: int
    event_id: str = Field(description="AirGate-Event-Id: the same for every attempt")
    type: str = Field(description="topup.delivered or topup.failed")
    reference: str = Field(description="the top-up's id")
    state: CallbackState
    attempts: int
    last_status: int | None = Field(description="the receiver's last HTTP status")
    last_error: str | None
    created_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    retry_until: datetime = Field(description="given up if not delivered by then")
    delivered_at: datetime | None


class CallbackView(CallbackEndpoint):
    recent: list[Delivery] = Field(description=f"the latest {RECENT} deliveries, newest first")


class DeliveriesQuery(Query):
    state: CallbackState | None = None
    before: int | None = Field(
        default=None, ge=1, le=2**63 - 1, description="next_before of the previous page"
    )
    limit: int = Field(default=50, ge=1, le=200)


class DeliveryPage(Out):
    deliveries: list[Delivery]
    next_before: int | None = Field(description="pass as `before` for the next page; null: done")


class DeliveryPath(Query):
    delivery_id: int = Field(ge=1, le=2**63 - 1)


class Removed(Out):
    removed: bool


class Pinged(Out):
    event_id: str = Field(description="evt_ping_…: new for every ping")
    ok: bool = Field(description="the receiver answered 2xx")
    status: int | None = Field(description="the receiver's HTTP status; null: no answer")
    error: str | None


def _actor(call: Call) -> Actor:
    return Actor.party(call.who.party_id, "api")


def _endpoint(found: callbacks.Endpoint) -> dict[str, Any]:
    return {
        "url": found.url,
        "created_at": found.created_at,
        "updated_at": found.updated_at,
        "previous_secret_until": found.previous_secret_until,
    }


def _registered(done: callbacks.Registered) -> Registered:
    return Registered(**_endpoint(done.endpoint), created=done.created, secret=done.secret)


def _delivery(row: CallbackDelivery) -> Delivery:
    return Delivery.model_validate(callbacks.delivery_dict(row))


async def put_callback(call: Call) -> Registered:
    body: CallbackBody = call.body
    done = await callbacks.register(
        call.core, actor=_actor(call), party_id=call.who.party_id, url=body.url
    )
    return _registered(done)


async def get_callback(call: Call) -> CallbackView:
    party_id = call.who.party_id
    found = await callbacks.get(call.core, party_id=party_id)
    if found is None:
        raise NotFound(kind="callback endpoint", key="(none registered)")
    rows = await callbacks.deliveries(call.core, party_id=party_id, limit=RECENT)
    return CallbackView(**_endpoint(found), recent=[_delivery(r) for r in rows])


async def delete_callback(call: Call) -> Removed:
    removed = await callbacks.remove(call.core, actor=_actor(call), party_id=call.who.party_id)
    return Removed(removed=removed)


async def rotate_secret(call: Call) -> Registered:
    done = await callbacks.rotate_secret(call.core, actor=_actor(call), party_id=call.who.party_id)
    return _registered(done)


async def list_deliveries(call: Call) -> DeliveryPage:
    asked: DeliveriesQuery = call.query
    rows = await callbacks.deliveries(
        call.core,
        party_id=call.who.party_id,
        limit=asked.limit,
        before_id=asked.before,
        state=asked.state,
    )
    more = len(rows) == asked.limit and rows
    return DeliveryPage(
        deliveries=[_delivery(r) for r in rows], next_before=rows[-1].id if more else None
    )


async def resend_delivery(call: Call) -> Delivery:
    row = await callbacks.resend(
        call.core,
        call.api.queue,
        actor=_actor(call),
        party_id=call.who.party_id,
        delivery_id=call.path.delivery_id,
    )
    return _delivery(row)


async def ping_callback(call: Call) -> Pinged:
    sent = await callbacks.ping(call.core, actor=_actor(call), party_id=call.who.party_id)
    return Pinged(event_id=sent.event_id, ok=sent.ok, status=sent.status, error=sent.error)


ENDPOINTS = (
    Endpoint(
        "PUT",
        "/callback",
        put_callback,
        "Register the party's outcome-callback URL, or replace it (the secret is kept)",
        Scope.MANAGE,
        response=Registered,
        body=CallbackBody,
        tag="callbacks",
        description="Each final top-up (delivered, failed) is POSTed to it, signed; see the "
        "Callbacks section of docs/API.md for the headers and how to verify them.",
        errors=(422,),
    ),
    Endpoint(
        "GET",
        "/callback",
        get_callback,
        "The party's callback URL and its latest deliveries (never the secret)",
        Scope.READ,
        response=CallbackView,
        tag="callbacks",
        errors=(404,),
    ),
    Endpoint(
        "DELETE",
        "/callback",
        delete_callback,
        "Stop callbacks to the party (pending deliveries are given up)",
        Scope.MANAGE,
        response=Removed,
        tag="callbacks",
        errors=(),
    ),
    Endpoint(
        "PUT",
        "/callback/secret",
        rotate_secret,
        "A new signing secret, shown once; the previous one also signs during the grace period",
        Scope.MANAGE,
        response=Registered,
        tag="callbacks",
        errors=(404,),
    ),
    Endpoint(
        "GET",
        "/callback/deliveries",
        list_deliveries,
        "The party's callback deliveries, newest first",
        Scope.READ,
        response=DeliveryPage,
        query=DeliveriesQuery,
        tag="callbacks",
        errors=(422,),
    ),
    Endpoint(
        "POST",
        "/callback/deliveries/{delivery_id}/resend",
        resend_delivery,
        "Send a delivered or given-up callback again, with a fresh retry window",
        Scope.MANAGE,
        response=Delivery,
        path_params=DeliveryPath,
        tag="callbacks",
        errors=(404, 422),
    ),
    Endpoint(
        "POST",
        "/callback/ping",
        ping_callback,
        "POST a signed test event (type ping) to the party's URL now, once; its answer",
        Scope.MANAGE,
        response=Pinged,
        tag="callbacks",
        description="To check a receiver and its signature check; not retried, not logged.",
        errors=(404,),
    ),
)
