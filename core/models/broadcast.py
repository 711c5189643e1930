"""Broadcasts: a distributor's message to a chosen set of its retailers, one row per recipient.

Invariant: the recipients are fixed when the broadcast is confirmed (one transaction writes the
broadcast and all its recipient rows), and a recipient row moves ``pending → sending`` in its own
committed UPDATE *before* its message goes out, so a worker that dies and is replaced never sends
anyone the same broadcast twice: a row left in ``sending`` is reported as ``unconfirmed``, not
resent.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.models.types import BigId, UtcDateTime, utcnow


class BroadcastState(StrEnum):
    SENDING = "sending"  # confirmed: the worker sends it (or will, after a restart)
    DONE = "done"  # every recipient has an outcome


class RecipientState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # claimed: the message may be on its way
    SENT = "sent"
    FAILED = "failed"  # refused (no such chat, an SMS gateway's refusal), or no route
    BLOCKED = "blocked"  # the user blocked the bot: later messages go by SMS
    UNCONFIRMED = "unconfirmed"  # a worker died while sending it: not sent again


class Broadcast(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    party_id: int = Field(foreign_key="party.id", index=True)  # the distributor who sent it
    # The confirming turn's idempotency key: a retried confirmation finds this broadcast.
    key: str = Field(sa_type=String(96), unique=True)
    text: str = Field(sa_type=String(800))
    # How the audience was chosen, for the record: "all", "low:SAFARICOM", "tag:nairobi".
    audience: str = Field(sa_type=String(80))
    state: str = Field(default=BroadcastState.SENDING, sa_type=String(10))
    total: int = 0
    # Where the progress is edited in (the distributor's Telegram chat), once the worker posted it.
    progress_chat_id: int | None = Field(default=None, sa_type=BigInteger)
    progress_message_id: int | None = Field(default=None, sa_type=BigInteger)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class BroadcastRecipient(SQLModel, table=True):
    __tablename__ = "broadcast_recipient"
    __table_args__ = (
        UniqueConstraint("broadcast_id", "party_id"),
        Index("ix_broadcast_recipient_state", "broadcast_id", "state", "id"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    broadcast_id: int = Field(foreign_key="broadcast.id")
    party_id: int = Field(foreign_key="party.id")
    via: str = Field(sa_type=String(16))  # how it goes: notify.Via, "telegram" | "sms"
    recipient: str = Field(sa_type=String(32))  # a chat id or an MSISDN
    state: str = Field(default=RecipientState.PENDING, sa_type=String(12))
    attempts: int = 0
    detail: str | None = Field(default=None, sa_type=String(200))
    sent_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class PartyTag(SQLModel, table=True):
    """A label a distributor gives its retailers (a region, a route, a shop type) to reach them."""

    __tablename__ = "party_tag"

    party_id: int = Field(foreign_key="party.id", primary_key=True)
    tag: str = Field(sa_type=String(40), primary_key=True, index=True)
