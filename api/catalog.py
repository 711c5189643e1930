"""The catalog as a reseller's system reads it: operators of a country, an operator's products,
and which operator a customer's number belongs to."""

from __future__ import annotations

from pydantic import Field

from api.endpoint import Call, Endpoint
from api.models import Out, Query
from core.models import Scope
from core.msisdn import masked, normalize
from core.services import catalog

CODE = r"^[a-z0-9][a-z0-9._:-]{0,63}$"


class OperatorsQuery(Query):
    country: str | None = Field(
        default=None, pattern=r"^[A-Za-z]{2}$", description="ISO 3166 code; default AIRGATE_COUNTRY"
    )


class Operator(Out):
    code: str
    name: str
    country: str
    currency: str


class Operators(Out):
    country: str
    operators: list[Operator]


async def list_operators(call: Call) -> Operators:
    country = (call.query.country or call.core.settings.country).upper()
    async with call.core.sessions() as session:
        found = await catalog.list_operators(session, country=country)
    return Operators(country=country, operators=[Operator.model_validate(o) for o in found])


class OperatorPath(Query):
    operator: str = Field(pattern=CODE, description="an operator's code, e.g. safaricom-ke")


class Product(Out):
    code: str
    kind: str = Field(description="airtime (any amount in the range) or bundle (a fixed price)")
    name: str
    min_minor: int | None = None
    max_minor: int | None = None
    step_minor: int | None = None
    price_minor: int | None = None
    validity_days: int | None = None
    data_mb: int | None = None


class Products(Out):
    operator: Operator
    products: list[Product]


async def list_products(call: Call) -> Products:
    async with call.core.sessions() as session:
        operator = await catalog.get_operator(session, call.path.operator)
        found = await catalog.products_of(session, operator.code)
    return Products(
        operator=Operator.model_validate(operator),
        products=[Product.model_validate(p) for p in found],
    )


class DetectQuery(Query):
    msisdn: str = Field(min_length=3, max_length=32, description="the customer's number, any form")


class Detected(Out):
    msisdn: str = Field(description="the number, masked")
    operator: Operator


async def detect(call: Call) -> Detected:
    number = normalize(call.query.msisdn, country=call.core.settings.country)
    found = (await call.core.catalog.get()).detect(number)
    return Detected(msisdn=masked(number), operator=Operator.model_validate(found))


ENDPOINTS = (
    Endpoint(
        "GET",
        "/operators",
        list_operators,
        "The operators of a country",
        Scope.READ,
        response=Operators,
        query=OperatorsQuery,
        tag="catalog",
        errors=(422,),
    ),
    Endpoint(
        "GET",
        "/operators/{operator}/products",
        list_products,
        "An operator's products: airtime (a range of amounts) and bundles (fixed prices)",
        Scope.READ,
        response=Products,
        path_params=OperatorPath,
        tag="catalog",
        errors=(404, 422),
    ),
    Endpoint(
        "GET",
        "/operator-lookup",
        detect,
        "Which operator a customer's number belongs to",
        Scope.READ,
        response=Detected,
        query=DetectQuery,
        tag="catalog",
        errors=(404, 422),
    ),
)
