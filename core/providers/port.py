"""The ports the top-up lifecycle talks to: an airtime aggregator and an SMS sender.

They speak AirGate's terms: our operator code, amounts in minor units, our reference, and an
outcome that is delivered, failed or unknown. An aggregator's own vocabulary (its operator ids, its
idempotency field, its statuses, its auth) stays inside its adapter; the registry
(core/providers/registry.py) picks the adapter by the setting ``provider``.

Invariant: every top-up carries one reference we chose (the top-up id). ``send_topup`` with a
reference the aggregator has seen before never delivers twice; it reports the original outcome. A
time-out after the request may have left is :class:`~core.errors.OutcomeUnknown`, never a failure:
only the aggregator's definitive answer (a failed transaction or a refusal) may release the stock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class Outcome(StrEnum):
    DELIVERED = "delivered"  # applied by the operator: capture the stock
    FAILED = "failed"  # definitively not applied, nothing charged: release the stock
    UNKNOWN = "unknown"  # not final at the aggregator yet: keep the stock held, ask again later


@dataclass(frozen=True, slots=True)
class ProviderOperator:
    """An operator as an aggregator lists it: what a catalog's ``[operators.providers]`` names."""

    ref: str  # the aggregator's own id for it, as text
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
    reference: str  # our top-up id: the aggregator de-duplicates on it
    msisdn: str  # E.164
    country: str  # ISO 3166 alpha-2 of the recipient
    operator: str  # our operator code ("safaricom-ke")
    # This aggregator's id for that operator and product kind, as the catalog records it
    # (core/models/catalog.py OperatorProvider); opaque to the core.
    operator_ref: str
    amount_minor: int  # face value in the operator's currency
    currency: str
    sender_msisdn: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderTransaction:
    """What became of a reference at the aggregator."""

    reference: str | None  # the sender's reference; None when the aggregator holds none
    outcome: Outcome
    provider_ref: str | None  # the aggregator's own transaction id, as text
    operator_ref: str | None  # the operator's receipt, once delivered
    delivered_minor: int | None
    currency: str
    at: datetime
    message: str = ""
    # What the aggregator charged our account for it, in charge_currency (Reloadly's
    # balanceInfo.cost, DT One's prices.wholesale.amount); None when it does not say.
    charged_minor: int | None = None
    charge_currency: str | None = None
    # The account's balance just before and after it (Reloadly's balanceInfo), when given.
    balance_before_minor: int | None = None
    balance_after_minor: int | None = None


@dataclass(frozen=True, slots=True)
class ProviderBalance:
    balance_minor: int
    currency: str


class AirtimeProvider(Protocol):
    # The adapter's registry name ("reloadly"): the catalog keys its operator ids by it.
    name: str

    async def detect_operator(self, *, msisdn: str, country: str) -> ProviderOperator: ...

    async def operators(self, *, country: str) -> list[ProviderOperator]: ...

    async def send_topup(self, order: TopupOrder) -> ProviderTransaction:
        """Deliver once per reference. Raises ProviderRejected (definitive: release),
        ProviderUnavailable (not sent, or safe to resend with the same reference) or
        OutcomeUnknown (may have been applied: look it up with :meth:`find`)."""
        ...

    async def find(self, *, reference: str, since: datetime) -> ProviderTransaction | None:
        """The transaction we sent with ``reference`` since ``since``; None if the aggregator has
        none (it never received the request). Any failure to look is ProviderUnavailable."""
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
