"""Request and response models shared by several resources; each resource module keeps its own.

Amounts are integers in minor units (``amount_minor``: cents of the currency named beside them),
times are RFC 3339 in UTC, customer numbers are shown masked (``+2547123****70``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Body(BaseModel):
    """A request body: unknown fields are refused by name (a typo is not silently ignored)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Query(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details; ``type`` is ``urn:airgate:problem:<code>``, stable per error."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["urn:airgate:problem:insufficient_stock"])
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


class RetailerPath(BaseModel):
    retailer_id: int = Field(ge=1, le=2**31 - 1)


class StockLine(Out):
    operator: str
    available_minor: int
    reserved_minor: int
    sold_minor: int


class CashLine(Out):
    currency: str
    cash_minor: int
    credit_limit_minor: int
    credit_available_minor: int


class Balance(Out):
    party_id: int
    name: str
    stock: list[StockLine]
    cash: list[CashLine]
