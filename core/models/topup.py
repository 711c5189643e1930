"""Top-ups, the notifications they owe, and the support cases they may become.

Invariant: a top-up's id is its ledger reservation id, its job id stem and the reference the
aggregator de-duplicates on; a final top-up (delivered or failed) has resolved its reservation in
the same SQL transaction that made it final. Notifications are an outbox: rows written in that
transaction, sent after the commit, resumed by the sweeper when a worker died in between.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, BigInteger, Index, String
from sqlmodel import Field, SQLModel

from core.models.types import BigId, UtcDateTime, utcnow


class TopupState(StrEnum):
    RESERVED = "reserved"  # stock held, request recorded, delivery job enqueued (or to be swept)
    UNKNOWN = "unknown"  # sent, outcome not known: status queries on a back-off schedule
    ESCALATED = "escalated"  # unknown past the window: a support case holds it, stock still held
    DELIVERED = "delivered"  # final: captured
    FAILED = "failed"  # final: released


FINAL_STATES = frozenset({TopupState.DELIVERED, TopupState.FAILED})
OPEN_STATES = (TopupState.RESERVED, TopupState.UNKNOWN)  # the worker and the sweeper drive these
# What may still become final: the open states, and an escalated top-up settled by its case.
SETTLEABLE_STATES = (*OPEN_STATES, TopupState.ESCALATED)


class Topup(SQLModel, table=True):
    __table_args__ = (
        Index("ix_topup_party_created", "party_id", "created_at"),
        Index("ix_topup_state_due", "state", "due_at"),
        Index("ix_topup_created", "created_at", "id"),  # a day's top-ups (reconciliation)
    )

    id: str = Field(primary_key=True, sa_type=String(32))
    party_id: int = Field(foreign_key="party.id")
    msisdn: str = Field(sa_type=String(16))
    operator_code: str = Field(foreign_key="operator.code", sa_type=String(32))
    product_code: str = Field(foreign_key="product.code", sa_type=String(64))
    kind: str = Field(sa_type=String(8))
    amount_minor: int = Field(sa_type=BigInteger)  # stock consumed: face value, or bundle price
    currency: str = Field(sa_type=String(3))
    channel: str = Field(sa_type=String(16))
    # A client's own idempotency key (a USSD turn, an API request): the same key, the same top-up.
    client_key: str | None = Field(default=None, sa_type=String(96), unique=True)
    state: str = Field(default=TopupState.RESERVED, sa_type=String(10))
    # When the worker or the sweeper should next look at it (sends, status queries).
    due_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    sends: int = 0  # requests sent to the provider (all with the same reference)
    checks: int = 0  # status queries made while unknown
    # The aggregator account holding it (core/routing/); NULL once sent: the first account.
    provider: str | None = Field(default=None, sa_type=String(32))
    # The accounts it left with a definite no before, in order ("alpha:refused,beta:not_sent").
    providers_tried: str | None = Field(default=None, sa_type=String(200))
    provider_ref: str | None = Field(default=None, sa_type=String(64))  # the aggregator's own id
    operator_txn_id: str | None = Field(default=None, sa_type=String(64))
    detail: str | None = Field(default=None, sa_type=String(200))  # last provider message/code
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    unknown_since: datetime | None = Field(default=None, sa_type=UtcDateTime)
    final_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class NotificationState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # refused by the gateway (a bad number): not retried


class Notification(SQLModel, table=True):
    """One message owed to someone; ``key`` makes each owed message exist once."""

    __table_args__ = (Index("ix_notification_state_created", "state", "created_at"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    key: str = Field(sa_type=String(96), unique=True)  # e.g. "{topup}:retailer"
    party_id: int | None = Field(default=None, foreign_key="party.id")
    via: str = Field(sa_type=String(10))  # how it goes: notify.Via, "telegram" | "sms"
    recipient: str = Field(sa_type=String(32))  # chat id or E.164
    text: str = Field(sa_type=String(480))
    state: str = Field(default=NotificationState.PENDING, sa_type=String(8))
    attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class CaseState(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class Resolution(StrEnum):
    """How a case ended (core/services/cases.py)."""

    ANSWERED = "answered"  # the aggregator's record answered it at once; nothing to settle
    DELIVERED = "delivered"  # the top-up was settled delivered: its stock captured
    FAILED = "failed"  # settled failed: its stock released
    RETURNED = "returned"  # a correcting transfer gave the retailer its stock back
    CLOSED = "closed"  # closed with a note, no money moved


class SupportCase(SQLModel, table=True):
    """A person must look at something: a top-up (``topup_id``, at most one case each) or, for a
    transaction the aggregator reported that is not ours, its ``reference``."""

    __tablename__ = "support_case"
    __table_args__ = (Index("ix_support_case_state_opened", "state", "opened_at"),)

    id: int | None = Field(default=None, primary_key=True)
    topup_id: str | None = Field(
        default=None, foreign_key="topup.id", unique=True, sa_type=String(32)
    )
    # What a case without a top-up is about ("reloadly:1234": the aggregator's transaction).
    reference: str | None = Field(default=None, unique=True, sa_type=String(96))
    party_id: int = Field(foreign_key="party.id", index=True)
    reason: str = Field(sa_type=String(40))  # "unknown_outcome", "retailer_report", "recon_…"
    state: str = Field(default=CaseState.OPEN, sa_type=String(10))
    note: str | None = Field(default=None, sa_type=String(400))
    opened_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    resolution: str | None = Field(default=None, sa_type=String(12))  # a Resolution
    resolved_by: str | None = Field(default=None, sa_type=String(64))  # an audit actor label
    # What the case was decided on: the aggregator's record, a reconciliation's row (numbers
    # masked). Written by the code that opens or settles the case, never by a channel's input.
    evidence: dict[str, object] = Field(default_factory=dict, sa_type=JSON)
    # Unanswered past AIRGATE_CASE_ANSWER_S: handed to the platform (core/services/cases.py).
    escalated_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
