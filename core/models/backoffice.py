"""The back office's records: settlement runs (immutable) and the daily reports sent.

Invariant: a settlement run is written once and never changed; database triggers refuse UPDATE and
DELETE (migration 0011), as for transfers. Its documents are not stored: they are regenerated from
the ledger (transfers up to ``through_transfer_id``) and the run's own terms, and their SHA-256
must equal the stored ones (core/services/settlement/).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.models.types import UtcDateTime, utcnow


class SettlementRun(SQLModel, table=True):
    """One period settled between a seller and its direct buyer."""

    __tablename__ = "settlement_run"
    __table_args__ = (UniqueConstraint("period", "seller_id", "buyer_id"),)

    id: int | None = Field(default=None, primary_key=True)
    period: str = Field(sa_type=String(7))  # "2026-11": a calendar month, local time
    seller_id: int = Field(foreign_key="party.id", index=True)
    buyer_id: int = Field(foreign_key="party.id", index=True)
    # Transfers with ids up to this were read: later ones (even dated inside the period) are
    # corrections of the next run.
    through_transfer_id: int = Field(sa_type=BigInteger)
    previous_id: int | None = Field(default=None)  # the pair's run before this one
    # The agreements' terms the run valued claw-backs and commissions at (JSON, sorted keys).
    terms: str = Field(sa_type=Text)
    amount_due_minor: int = Field(sa_type=BigInteger)  # + the buyer owes the seller, - the reverse
    csv_sha256: str = Field(sa_type=String(64))
    pdf_sha256: str = Field(sa_type=String(64))
    created_by: str = Field(sa_type=String(60))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class ReportSend(SQLModel, table=True):
    """A party's daily report for a day, claimed by one worker before it is sent: the claim's
    unique key makes two workers, or a restart, send it once."""

    __tablename__ = "report_send"
    __table_args__ = (Index("ix_report_send_state", "state"),)

    party_id: int = Field(foreign_key="party.id", primary_key=True)
    day: date = Field(sa_type=Date, primary_key=True)
    via: str = Field(sa_type=String(10))  # notify.Via
    state: str = Field(default="claimed", sa_type=String(8))  # claimed | sent | failed | quiet
    claimed_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
