"""The aggregator's transaction report as reconciliation stages it (core/services/reconcile.py).

Invariant: one row per transaction of one aggregator account (``provider``, ``provider_ref``);
a later pull of the same day overwrites it with what the aggregator says now, so staging twice
is staging once. The rows are the evidence a reconciliation's cases point to.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.models.types import BigId, UtcDateTime


class ReconLine(SQLModel, table=True):
    __tablename__ = "recon_line"
    __table_args__ = (
        UniqueConstraint("provider", "provider_ref", name="uq_recon_line_provider_ref"),
        Index("ix_recon_line_reference", "reference"),
        Index("ix_recon_line_provider_at", "provider", "at"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    provider: str = Field(sa_type=String(32))  # the aggregator account (registry name)
    provider_ref: str = Field(sa_type=String(64))  # its transaction id
    reference: str | None = Field(default=None, sa_type=String(64))  # ours, as it recorded it
    outcome: str = Field(sa_type=String(10))  # core.providers.port.Outcome
    amount_minor: int | None = Field(default=None, sa_type=BigInteger)  # delivered, if it was
    currency: str = Field(sa_type=String(3))
    operator_ref: str | None = Field(default=None, sa_type=String(64))
    at: datetime = Field(sa_type=UtcDateTime)
