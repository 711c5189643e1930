"""Stock requests: a retailer's purchase that needs its distributor's approval (the part of it
that would be paid on credit).

Invariant: a request is decided at most once (``pending`` → ``approved`` | ``refused`` |
``failed``, by a conditional UPDATE); an approval performs the sale under the request's own
idempotency key, so approving twice, or retrying an approval, sells once.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Index, String
from sqlmodel import Field, SQLModel

from core.models.types import BigId, UtcDateTime, utcnow


class RequestState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"  # sold
    REFUSED = "refused"  # by the distributor
    FAILED = "failed"  # approved, but the sale was refused (cash or stock moved meanwhile)


class StockRequest(SQLModel, table=True):
    __tablename__ = "stock_request"
    __table_args__ = (Index("ix_stock_request_seller_state", "seller_id", "state"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    buyer_id: int = Field(foreign_key="party.id", index=True)
    seller_id: int = Field(foreign_key="party.id")
    operator_code: str = Field(foreign_key="operator.code", sa_type=String(32))
    face_minor: int = Field(sa_type=BigInteger)  # the stock asked for
    state: str = Field(default=RequestState.PENDING, sa_type=String(10))
    note: str | None = Field(default=None, sa_type=String(200))  # why refused or failed
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    decided_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
