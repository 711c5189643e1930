"""The ports the top-up lifecycle talks to: an airtime provider and an SMS sender.

Invariant: every top-up carries one reference we chose (the top-up id). ``send_topup`` with a
reference the provider has seen before never delivers twice; it reports the original outcome. A
time-out after the request may have left is :class:`~core.errors.OutcomeUnknown`, never a failure:
only the provider's definitive answer (a FAILED/REFUNDED transaction or a 4xx refusal) may release
the stock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class ProviderStatus(StrEnum):
    DELIVERED = "delivered"  # Reloadly SUCCESSFUL
    PENDING = "pending"  # PROCESSING: still with the operator; ask again later
    FAILED = "failed"  # FAILED or REFUNDED: not applied, nothing charged


@dataclass(frozen=True, slots=True)
class ProviderOperator:
    operator_id: int
    name: str
    country: str
    currency: str
    bundle: bool
    # RANGE: any amount in [min, max]; FIXED: one of fixed_amounts_minor.
    denomination_type: str
    min_minor: int | None
    max_minor: int | None
    fixed_amounts_minor: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class TopupOrder:
    reference: str  # our top-up id: Reloadly's customIdentifier
    msisdn: str  # E.164
    country: str  # ISO 3166 alpha-2 of the recipient
    operator_id: int  # the provider's operator (the bundle operator for data/SMS bundles)
    amount_minor: int  # face value in the operator's currency (useLocalAmount)
    currency: str
    sender_msisdn: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderTransaction:
    reference: str
    status: ProviderStatus
    transaction_id: int | None
    operator_transaction_id: str | None
    delivered_minor: int | None
    currency: str
    at: datetime
    message: str = ""


@dataclass(frozen=True, slots=True)
class ProviderBalance:
    balance_minor: int
    currency: str


class AirtimeProvider(Protocol):
    async def detect_operator(self, *, msisdn: str, country: str) -> ProviderOperator: ...

    async def operators(self, *, country: str) -> list[ProviderOperator]: ...

    async def send_topup(self, order: TopupOrder) -> ProviderTransaction:
        """Deliver once per reference. Raises ProviderRejected (definitive: release),
        ProviderUnavailable (not sent or safe to resend with the same reference) or
        OutcomeUnknown (may have been applied: look it up with :meth:`find`)."""
        ...

    async def find(self, *, reference: str, since: datetime) -> ProviderTransaction | None:
        """The transaction we sent with ``reference`` since ``since``; None if the provider has
        none (it never received the request)."""
        ...

    async def balance(self) -> ProviderBalance: ...

    def transactions(self, *, start: datetime, end: datetime) -> AsyncIterator[ProviderTransaction]:
        """Every transaction in [start, end), page by page (reconciliation)."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SmsReceipt:
    number: str
    accepted: bool
    message_id: str | None
    status: str


class SmsSender(Protocol):
    async def send(self, *, to: Sequence[str], message: str) -> list[SmsReceipt]:
        """Raises ProviderUnavailable when the gateway cannot be reached or answers 5xx."""
        ...

    async def close(self) -> None: ...
