"""Audit log: every state-changing action, written in the same transaction as the change."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String
from sqlmodel import Field, SQLModel

from core.models.types import BigId, UtcDateTime, utcnow


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime, index=True)
    actor: str = Field(sa_type=String(64))  # "party:12", "cli:root", "system"
    channel: str = Field(sa_type=String(16))  # cli, ussd, telegram, api, system
    action: str = Field(sa_type=String(48))  # "stock.sell", "party.unlock", …
    subject_party_id: int | None = Field(default=None, index=True)
    reference: str | None = Field(default=None, sa_type=String(96))
    details: dict[str, object] = Field(default_factory=dict, sa_type=JSON)
