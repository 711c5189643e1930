"""Operators, number prefixes, products and the discount agreements between levels."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import BigInteger, String, UniqueConstraint
from sqlmodel import Field, SQLModel

ALL_OPERATORS = "*"


class ProductKind(StrEnum):
    AIRTIME = "airtime"
    DATA = "data"
    SMS = "sms"


class Operator(SQLModel, table=True):
    code: str = Field(primary_key=True, sa_type=String(32))  # e.g. "safaricom-ke"
    country: str = Field(sa_type=String(2), index=True)
    name: str = Field(sa_type=String(60))
    currency: str = Field(sa_type=String(3))
    # Carrier names as phonenumbers reports them, comma-separated ("Safaricom").
    carrier_names: str = Field(default="", sa_type=String(200))


class OperatorProvider(SQLModel, table=True):
    """An operator's ids at one aggregator, as text whatever the aggregator's own type: a new
    aggregator adds rows, not columns. ``bundle_ref`` is where the aggregator lists data and SMS
    bundles under another operator (Reloadly does); empty, bundles go to ``airtime_ref`` too."""

    __tablename__ = "operator_provider"

    operator_code: str = Field(foreign_key="operator.code", primary_key=True, sa_type=String(32))
    provider: str = Field(primary_key=True, sa_type=String(16))  # the registry's name: "reloadly"
    airtime_ref: str | None = Field(default=None, sa_type=String(64))
    bundle_ref: str | None = Field(default=None, sa_type=String(64))

    def ref(self, *, bundle: bool) -> str | None:
        return (self.bundle_ref or self.airtime_ref) if bundle else self.airtime_ref


class NumberPrefix(SQLModel, table=True):
    """Overrides phonenumbers' carrier data; the longest matching prefix wins (ported numbers)."""

    __tablename__ = "number_prefix"

    prefix: str = Field(primary_key=True, sa_type=String(16))  # E.164, e.g. "+2547575" or a number
    operator_code: str = Field(foreign_key="operator.code", sa_type=String(32))


class Product(SQLModel, table=True):
    code: str = Field(primary_key=True, sa_type=String(64))  # e.g. "safaricom-ke:data-1gb-7d"
    operator_code: str = Field(foreign_key="operator.code", index=True, sa_type=String(32))
    kind: str = Field(sa_type=String(8))
    name: str = Field(sa_type=String(80))
    # Airtime: any amount in [min, max] that is a multiple of step. Bundles: a fixed price.
    min_minor: int | None = Field(default=None, sa_type=BigInteger)
    max_minor: int | None = Field(default=None, sa_type=BigInteger)
    step_minor: int | None = Field(default=None, sa_type=BigInteger)
    price_minor: int | None = Field(default=None, sa_type=BigInteger)
    validity_days: int | None = None
    data_mb: int | None = None
    sms_count: int | None = None
    active: bool = True


class Agreement(SQLModel, table=True):
    """Discount (and optional commission) a seller grants a buyer on one operator or all (``*``)."""

    __table_args__ = (UniqueConstraint("seller_id", "buyer_id", "operator_code"),)

    id: int | None = Field(default=None, primary_key=True)
    seller_id: int = Field(foreign_key="party.id", index=True)
    buyer_id: int = Field(foreign_key="party.id", index=True)
    operator_code: str = Field(default=ALL_OPERATORS, sa_type=String(32))
    discount_bps: int = Field(ge=0, le=10_000)
    commission_bps: int | None = None
