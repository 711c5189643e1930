"""Parties: the platform, distributors (optionally nested) and retailers."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.models.types import UtcDateTime, utcnow


class Role(StrEnum):
    PLATFORM = "platform"
    DISTRIBUTOR = "distributor"
    RETAILER = "retailer"


class PartyStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    PENDING = "pending"


class Party(SQLModel, table=True):
    """One party of the chain. ``pin_hash`` is a peppered HMAC (core/security.py), never a PIN."""

    id: int | None = Field(default=None, primary_key=True)
    role: str = Field(sa_type=String(16))
    parent_id: int | None = Field(default=None, foreign_key="party.id", index=True)
    name: str = Field(sa_type=String(120))
    msisdn: str = Field(sa_type=String(16), unique=True, index=True)
    status: str = Field(default=PartyStatus.ACTIVE, sa_type=String(16))
    language: str = Field(default="en", sa_type=String(8))
    region: str | None = Field(default=None, sa_type=String(40), index=True)
    pin_hash: str | None = Field(default=None, sa_type=String(160))
    pin_failed_attempts: int = 0
    pin_locked: bool = False
    # What the parent lets this party owe it; realised as the funded CREDIT account (core/ledger).
    credit_limit_minor: int = Field(default=0, sa_type=BigInteger)
    # Top-ups per local day; None: the platform default (AIRGATE_TOPUP_DAILY_LIMIT_MINOR).
    daily_limit_minor: int | None = Field(default=None, sa_type=BigInteger)
    # Stock per operator below which the party is alerted; None: AIRGATE_LOW_STOCK_MINOR.
    low_stock_minor: int | None = Field(default=None, sa_type=BigInteger)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.msisdn})"


class PartyIdentity(SQLModel, table=True):
    """Who a party is on a channel other than its phone number (a Telegram user, later a WhatsApp
    number or an API key's owner): ``external_id`` as that channel writes it. One identity acts for
    one party; a party has at most one identity per channel (a new link replaces the old one)."""

    __tablename__ = "party_identity"
    __table_args__ = (UniqueConstraint("party_id", "channel"),)

    channel: str = Field(sa_type=String(16), primary_key=True)
    external_id: str = Field(sa_type=String(64), primary_key=True)
    party_id: int = Field(foreign_key="party.id")
    # The channel refused our messages to it (the user blocked the bot): notices go by SMS until
    # the user writes to us again there.
    blocked: bool = False
    linked_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
