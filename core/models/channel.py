"""What the channels' gateways tell us about sessions (Africa's Talking's end-of-session
notification): hops, duration, cost and how the session ended, for reports and for support."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlmodel import Field, SQLModel

from core.models.types import BigId, UtcDateTime, utcnow


class UssdSessionEnd(SQLModel, table=True):
    __tablename__ = "ussd_session_end"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    gateway: str = Field(sa_type=String(24))
    session_id: str = Field(sa_type=String(96), index=True)
    msisdn: str = Field(sa_type=String(16))
    status: str = Field(sa_type=String(16))  # Success | Incomplete | Failed
    error: str | None = Field(default=None, sa_type=String(200))
    hops: int | None = None
    duration_ms: int | None = None
    cost: str | None = Field(default=None, sa_type=String(24))  # as the gateway wrote it
    at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
