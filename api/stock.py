"""Stock and cash between a seller and its buyer: a party buys stock from its seller (paid from its
cash at once, or, when it needs credit, a request its seller decides, as USSD menu 4 does); a
distributor sells stock to one of its retailers and records a retailer's deposit.

Each is keyed by the request's Idempotency-Key (the sale's key) or by the deposit's own reference.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from api.endpoint import ANY_ROLE, DISTRIBUTOR, Call, Endpoint, Reply
from api.models import Body, Out, RetailerPath
from api.retailers import own_retailer
from core.errors import InsufficientFunds
from core.models import Scope
from core.services import requests, stock
from core.services.audit import Actor

CHANNEL = "api"
OPERATOR = r"^[a-z0-9][a-z0-9._:-]{0,31}$"
MAX_MINOR = 10**12


class Purchase(Body):
    operator: str = Field(pattern=OPERATOR, description="the operator's code, e.g. safaricom-ke")
    face_minor: int = Field(ge=1, le=MAX_MINOR, description="the airtime's face value")


class Bought(Out):
    state: Literal["bought", "requested"] = Field(
        description="bought: paid from cash, stock added now; requested: it needs credit, the "
        "seller decides (request_id)"
    )
    reference: str | None = None
    request_id: int | None = None
    face_minor: int
    price_minor: int
    cash_minor: int
    credit_minor: int


async def buy_stock(call: Call) -> Bought | Reply:
    asked: Purchase = call.body
    actor = Actor.party(call.who.party_id, CHANNEL)
    quote = await stock.quote(
        call.core,
        buyer_id=call.who.party_id,
        operator_code=asked.operator,
        face_minor=asked.face_minor,
    )
    if not quote.credit_minor:
        try:
            receipt = await stock.sell(
                call.core,
                actor=actor,
                seller_ref=quote.seller.id or 0,
                buyer_ref=call.who.party_id,
                operator_code=asked.operator,
                face_minor=asked.face_minor,
                key=call.client_key,
                queue=call.api.queue,
                cash_only=True,
            )
        except InsufficientFunds:  # cash was spent since the quote: the credit part is asked
            pass
        else:
            return Reply(
                Bought(
                    state="bought",
                    reference=receipt.reference,
                    face_minor=receipt.face_minor,
                    price_minor=receipt.price_minor,
                    cash_minor=receipt.cash_minor,
                    credit_minor=receipt.credit_minor,
                ),
                201,
            )
    made = await requests.create(
        call.core,
        buyer_id=call.who.party_id,
        operator_code=asked.operator,
        face_minor=asked.face_minor,
        actor=actor,
        queue=call.api.queue,
    )
    return Bought(
        state="requested",
        request_id=made.request.id,
        face_minor=quote.face_minor,
        price_minor=quote.price_minor,
        cash_minor=quote.cash_minor,
        credit_minor=quote.credit_minor,
    )


class Sale(Out):
    reference: str
    replayed: bool
    face_minor: int
    price_minor: int
    cash_minor: int
    credit_minor: int


async def sell_stock(call: Call) -> Sale:
    asked: Purchase = call.body
    retailer = await own_retailer(call, call.path.retailer_id)
    receipt = await stock.sell(
        call.core,
        actor=Actor.party(call.who.party_id, CHANNEL),
        seller_ref=call.who.party_id,
        buyer_ref=retailer.id or 0,
        operator_code=asked.operator,
        face_minor=asked.face_minor,
        key=call.client_key,
        queue=call.api.queue,
    )
    return Sale(**receipt_fields(receipt))


def receipt_fields(receipt: stock.Receipt) -> dict[str, object]:
    return {
        "reference": receipt.reference,
        "replayed": receipt.replayed,
        "face_minor": receipt.face_minor,
        "price_minor": receipt.price_minor,
        "cash_minor": receipt.cash_minor,
        "credit_minor": receipt.credit_minor,
    }


class DepositRequest(Body):
    amount_minor: int = Field(ge=1, le=MAX_MINOR)
    reference: str = Field(
        pattern=r"^[A-Za-z0-9._:/-]{1,64}$", description="the payment's own reference, once"
    )
    currency: str = Field(default="KES", pattern=r"^[A-Z]{3}$")


class Deposit(Out):
    reference: str
    amount_minor: int
    repaid_credit_minor: int = Field(description="of it, what repaid credit")
    cash_minor: int = Field(description="the rest, added to the retailer's cash")


async def record_deposit(call: Call) -> Deposit:
    asked: DepositRequest = call.body
    retailer = await own_retailer(call, call.path.retailer_id)
    receipt = await stock.deposit(
        call.core,
        actor=Actor.party(call.who.party_id, CHANNEL),
        receiver_ref=call.who.party_id,
        payer_ref=retailer.id or 0,
        amount_minor=asked.amount_minor,
        reference=asked.reference,
        currency=asked.currency,
    )
    return Deposit(
        reference=receipt.reference,
        amount_minor=receipt.price_minor,
        repaid_credit_minor=receipt.credit_minor,
        cash_minor=receipt.cash_minor,
    )


ENDPOINTS = (
    Endpoint(
        "POST",
        "/stock/purchases",
        buy_stock,
        "Buy stock from one's seller: bought from cash now (201), or asked for on credit (202)",
        Scope.STOCK,
        roles=ANY_ROLE,
        response=Bought,
        status=202,
        also=(201,),
        body=Purchase,
        tag="stock",
    ),
    Endpoint(
        "POST",
        "/retailers/{retailer_id}/stock",
        sell_stock,
        "Sell stock to one of the distributor's retailers at the agreed discount",
        Scope.STOCK,
        roles=DISTRIBUTOR,
        response=Sale,
        status=201,
        path_params=RetailerPath,
        body=Purchase,
        tag="distributor",
    ),
    Endpoint(
        "POST",
        "/retailers/{retailer_id}/deposits",
        record_deposit,
        "Record cash a retailer handed over: it repays used credit first, the rest is cash",
        Scope.STOCK,
        roles=DISTRIBUTOR,
        response=Deposit,
        status=201,
        path_params=RetailerPath,
        body=DepositRequest,
        tag="distributor",
    ),
)
