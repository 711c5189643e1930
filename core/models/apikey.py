"""API keys: how a reseller's own system acts for its party on the REST API (api/).

Invariant: the key itself is never stored: only its SHA-256 (a 256-bit random secret needs no
slow hash: nobody can guess it, and a lookup by hash is one indexed read) and a short visible
prefix that support and the key's owner can name it by. A revoked key stays, for the audit trail.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import String
from sqlmodel import Field, SQLModel

from core.models.types import UtcDateTime, utcnow


class Scope(StrEnum):
    READ = "read"  # balances, catalog, top-ups, statements, reports
    TOPUP = "topup"  # send top-ups
    STOCK = "stock"  # buy stock from one's seller, sell stock to one's retailers, deposits
    MANAGE = "manage"  # retailers (create, suspend), broadcasts


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    party_id: int = Field(foreign_key="party.id", index=True)
    prefix: str = Field(sa_type=String(12), unique=True)  # "agk_" + 8 characters of the key
    secret_hash: str = Field(sa_type=String(64), unique=True)  # SHA-256 of the whole key, hex
    scopes: str = Field(sa_type=String(64))  # comma-separated Scope values, sorted
    label: str = Field(default="", sa_type=String(60))
    created_by: str = Field(sa_type=String(60))  # the audit actor's label
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
