"""Ledger tables: accounts with stored balances, immutable transfers, two-phase reservations.

Invariant: an account's ``balance_minor`` equals the sum of its credits minus its debits, each asset
sums to zero over all accounts, and no non-system account is below zero (core/ledger/).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, Index, String
from sqlmodel import Field, SQLModel

from core.models.types import BigId, UtcDateTime, utcnow


class AccountKind(StrEnum):
    MAIN = "main"  # the party's spendable stock or cash
    INFLIGHT = "inflight"  # reserved for top-ups not yet resolved
    SOLD = "sold"  # airtime delivered to customers through this party
    CREDIT = "credit"  # available credit (funded by the parent's credit line)
    # System accounts: the outside world's side of each entry; they may go negative.
    ISSUANCE = "issuance"  # operator airtime entering the platform
    DEPOSITS = "deposits"  # cash handed over outside AirGate
    CREDIT_LINE = "credit_line"  # credit granted


SYSTEM_KINDS = frozenset({AccountKind.ISSUANCE, AccountKind.DEPOSITS, AccountKind.CREDIT_LINE})


class ReservationStatus(StrEnum):
    RESERVED = "reserved"
    CAPTURED = "captured"
    RELEASED = "released"


class Account(SQLModel, table=True):
    # A backstop under the guarded UPDATE: the database itself refuses an overdrawn account.
    __table_args__ = (
        CheckConstraint("is_system OR balance_minor >= 0", name="account_no_overdraft"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # "p{party}:{kind}:{asset}" or "sys:{kind}:{asset}": one account per owner, kind and asset.
    code: str = Field(sa_type=String(96), unique=True)
    party_id: int | None = Field(default=None, foreign_key="party.id", index=True)
    asset: str = Field(sa_type=String(48))
    kind: str = Field(sa_type=String(16))
    is_system: bool = False
    balance_minor: int = Field(default=0, sa_type=BigInteger)


class Transfer(SQLModel, table=True):
    """Immutable: a database trigger refuses UPDATE and DELETE (migration 0001)."""

    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="transfer_amount_positive"),
        Index("ix_transfer_created_at", "created_at"),  # reports and settlements read by date
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    idempotency_key: str = Field(sa_type=String(160), unique=True)
    kind: str = Field(sa_type=String(16))
    asset: str = Field(sa_type=String(48))
    debit_account_id: int = Field(foreign_key="account.id", index=True)
    credit_account_id: int = Field(foreign_key="account.id", index=True)
    amount_minor: int = Field(sa_type=BigInteger)
    reference: str | None = Field(default=None, sa_type=String(96), index=True)
    memo: str | None = Field(default=None, sa_type=String(200))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class Reservation(SQLModel, table=True):
    """A top-up's hold on stock; its id is the top-up id. Resolves at most once."""

    id: str = Field(primary_key=True, sa_type=String(64))
    party_id: int = Field(foreign_key="party.id", index=True)
    asset: str = Field(sa_type=String(48))
    amount_minor: int = Field(sa_type=BigInteger)
    status: str = Field(default=ReservationStatus.RESERVED, sa_type=String(10))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
