"""Outcome callbacks: a party's endpoint and the deliveries owed to it (an outbox).

Invariant: a ``callback_delivery`` row is written in the transaction that made its top-up final
(core/services/finish.py), one per (event, party): the retailer's endpoint and its distributor's.
It is pending until the receiver answers 2xx (delivered) or the retry window passes (given up).
The endpoint keeps no secret: the signing secret is derived from ``secret_seed`` and the server's
pepper (core/services/callbacks/signing.py), so the database alone cannot sign.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.models.types import BigId, UtcDateTime, utcnow


class CallbackEndpoint(SQLModel, table=True):
    __tablename__ = "callback_endpoint"

    party_id: int = Field(foreign_key="party.id", primary_key=True)
    url: str = Field(sa_type=String(2048))
    # Random; the secret is HMAC(pepper key, seed). Half of what signs: never in a repr.
    secret_seed: str = Field(sa_type=String(64), repr=False)
    # After a rotation, the previous seed still signs (a second signature) until this time.
    previous_seed: str | None = Field(default=None, sa_type=String(64), repr=False)
    previous_until: datetime | None = Field(default=None, sa_type=UtcDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class CallbackState(StrEnum):
    PENDING = "pending"  # owed: a job will POST it at due_at
    DELIVERED = "delivered"  # the receiver answered 2xx
    GIVEN_UP = "given_up"  # no 2xx within the retry window (or no endpoint any more)


class CallbackDelivery(SQLModel, table=True):
    __tablename__ = "callback_delivery"
    __table_args__ = (
        UniqueConstraint("event_id", "party_id"),
        Index("ix_callback_delivery_state_due", "state", "due_at"),
        Index("ix_callback_delivery_party_created", "party_id", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    event_id: str = Field(sa_type=String(48))  # the same for every party told of one outcome
    event_type: str = Field(sa_type=String(32))  # "topup.delivered" | "topup.failed"
    party_id: int = Field(foreign_key="party.id")  # whose endpoint it goes to
    topup_id: str = Field(foreign_key="topup.id", sa_type=String(32))
    state: str = Field(default=CallbackState.PENDING, sa_type=String(10))
    attempts: int = 0  # POSTs made (a job's id is "cb{id}:{attempts}")
    due_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    # No 2xx by then: given up. Owed at + callback_window_s; a resend starts a new window.
    retry_until: datetime = Field(sa_type=UtcDateTime)
    last_attempt_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_status: int | None = None  # the receiver's HTTP status, None: no answer
    last_error: str | None = Field(default=None, sa_type=String(200))
    delivered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
