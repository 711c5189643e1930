"""The one error tree of AirGate.

    AirGateError
    ├── SettingsError              a bad AIRGATE_* value (start-up)
    ├── InputError                 the user can correct it by typing something else
    │   ├── InvalidMsisdn
    │   ├── InvalidPin             not 4-6 digits
    │   └── InvalidAmount
    ├── Reprompt                   the answer cannot be used: ask again (conversation/flow.py)
    ├── NotFound                   party, operator, product, reservation …
    ├── Conflict
    │   ├── AlreadyExists          e.g. an MSISDN already registered
    │   ├── DuplicateReference     a payment/intake reference seen before: refused, not re-counted
    │   ├── IdempotencyConflict    same idempotency key, different request
    │   └── SessionConflict        two turns of one session at once (conversation/sessions.py)
    ├── Refused                    a business rule says no
    │   ├── InsufficientStock
    │   ├── InsufficientFunds      cash plus available credit do not cover the price
    │   ├── PartyInactive          suspended or pending
    │   ├── PinLocked
    │   ├── WrongPin               carries attempts_left
    │   ├── NotPermitted           e.g. selling to a party that is not one's own retailer
    │   ├── ReservationResolved    a reservation resolves at most once
    │   ├── LimitExceeded          the retailer's daily top-up limit
    │   └── RepeatNeedsConfirmation  same retailer, number and amount within the repeat window
    ├── StoreUnavailable           the database or Redis cannot be reached now (core/stores.py)
    ├── TryAgain                   not now, and nothing was done: ask again in a moment
    │   ├── DeadlineExceeded       the request's time ran out before money moved (core/deadline.py)
    │   └── Busy                   too many money steps of one payer already queue here
    │                              (core/hot_rows.py)
    └── ProviderError              the operator/aggregator or SMS gateway (core/providers/)
        ├── ProviderUnavailable    not sent, or safe to resend with the same reference (5xx)
        │   ├── NotSent            the request never left (refused connection, no token, 429):
        │   │                      the only unavailability another aggregator may be tried after
        │   └── Throttled          not sent: wait retry_after_s (Telegram's 429)
        ├── OutcomeUnknown         may have been applied (time-out after sending): look it up
        └── ProviderRejected       a definitive 4xx refusal: nothing was delivered
            └── RecipientBlocked   the user blocked the bot: nothing reaches them there

Errors carry fields (for channels that translate) and an English ``str`` (for the CLI and logs).
Third-party errors (SQLAlchemy, phonenumbers, pydantic) are translated where they are caught; none
crosses a service boundary. Driver errors that mean "the store is not there" (a refused or dropped
connection to the database or Redis) become :class:`StoreUnavailable` at the adapter
(``core/stores.py``: ``Core.transaction``, the broadcast sender's lease); other database errors
(a constraint, a trigger's refusal) stay SQLAlchemy's, caught by the service that expects them.
No error ever carries a PIN.

Signals, not errors: exceptions private to a module (``_Lost`` …) and these two,
which never cross a service: ``Overdraft`` (core/ledger/postings.py: a guard refused a debit; the
service turns it into InsufficientStock or InsufficientFunds) and ``Malformed``
(inside an aggregator adapter: an answer it cannot read; it becomes OutcomeUnknown).
"""

from __future__ import annotations

from typing import Any

from core.money import format_minor


class AirGateError(Exception):
    """Base: ``code`` is stable for translation catalogues; fields are keyword-only."""

    code = "error"
    template = "something went wrong"

    def __init__(self, **fields: Any) -> None:
        self.fields = fields
        for name, value in fields.items():
            setattr(self, name, value)
        super().__init__(self.template.format(**fields, **self._shown(fields)))

    def _shown(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Extra values for people (e.g. amounts formatted), beside the raw fields."""
        return {}

    def shown_fields(self) -> dict[str, Any]:
        """The fields a translated text may use: the raw ones and the formatted ones."""
        return {**self.fields, **self._shown(self.fields)}

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.fields.items())
        return f"{type(self).__name__}({inner})"


class SettingsError(AirGateError):
    """A bad ``AIRGATE_*`` variable: ``value`` is what it held, or None where it must not be
    shown (a secret, JSON that may hold one, an unknown name); a URL's password is masked."""

    code = "settings"
    template = "invalid setting {setting}: {reason}{got}"
    SHOWN_CHARS = 160  # a path or URL in full, a pasted blob cut short

    def _shown(self, fields: dict[str, Any]) -> dict[str, Any]:
        value = fields.get("value")
        if value is None:
            return {"got": ""}
        text = repr(value)
        if len(text) > self.SHOWN_CHARS:
            text = text[: self.SHOWN_CHARS - 1] + "…"
        return {"got": f" (got {text})"}


class InputError(AirGateError):
    code = "input"
    template = "{reason}"


class InvalidMsisdn(InputError):
    code = "invalid_msisdn"
    template = "{value!r} is not a valid phone number for {country}"


class InvalidPin(InputError):
    code = "invalid_pin"
    template = "a PIN is 4 to 6 digits"


class InvalidAmount(InputError):
    code = "invalid_amount"
    template = "{reason}"


class NotFound(AirGateError):
    code = "not_found"
    template = "no {kind} {key!r}"


class Conflict(AirGateError):
    code = "conflict"
    template = "{reason}"


class AlreadyExists(Conflict):
    code = "already_exists"
    template = "{kind} {key!r} already exists"


class DuplicateReference(Conflict):
    code = "duplicate_reference"
    template = "reference {reference!r} was already recorded; nothing was counted twice"


class IdempotencyConflict(Conflict):
    code = "idempotency_conflict"
    template = "idempotency key {key!r} was used before for a different request"


class Refused(AirGateError):
    code = "refused"
    template = "{reason}"


class _Shortfall(Refused):
    """Carries ``available_minor`` and ``needed_minor``; the text shows them in major units."""

    def _shown(self, fields: dict[str, Any]) -> dict[str, Any]:
        currency = fields.get("currency", "")
        return {
            "available": format_minor(fields["available_minor"], currency),
            "needed": format_minor(fields["needed_minor"], currency),
        }


class InsufficientStock(_Shortfall):
    code = "insufficient_stock"
    template = "{party} has {available} of {asset}, {needed} needed"


class InsufficientFunds(_Shortfall):
    code = "insufficient_funds"
    template = "{party} can pay {available} (cash plus available credit), {needed} needed"


class PartyInactive(Refused):
    code = "party_inactive"
    template = "{party} is {status}"


class PinLocked(Refused):
    code = "pin_locked"
    template = "{party}'s PIN is locked after too many wrong tries; ask {unlocker} to unlock it"


class WrongPin(Refused):
    code = "wrong_pin"
    template = "wrong PIN, {attempts_left} attempt(s) left"


class NotPermitted(Refused):
    code = "not_permitted"
    template = "{reason}"


class ReservationResolved(Refused):
    code = "reservation_resolved"
    template = "reservation {reservation_id!r} is already {status}"


class LimitExceeded(_Shortfall):
    code = "limit_exceeded"
    template = "{party} may top up {available} more today, {needed} asked"


class RepeatNeedsConfirmation(Refused):
    code = "repeat_needs_confirmation"
    template = (
        "the same top-up ({amount} to {msisdn}) was made {seconds_ago} s ago; confirm again to "
        "send it twice"
    )

    def _shown(self, fields: dict[str, Any]) -> dict[str, Any]:
        return {"amount": format_minor(fields["amount_minor"], fields.get("currency", ""))}


class StoreUnavailable(AirGateError):
    """The database or Redis refused or dropped the connection: ``store`` names which, ``detail``
    the driver error's type (never its text: it may hold a statement's parameters). Trying again is
    safe: every write is keyed, so a unit of work that did commit is not applied twice."""

    code = "store_unavailable"
    template = "the {store} is unavailable ({detail}); try again"


class TryAgain(AirGateError):
    """Refused for now, before anything moved: the same request asked again later may pass (a
    USSD confirm's PIN again, an API request with the same Idempotency-Key)."""

    code = "try_again"
    template = "not now; nothing was done: try again"


class DeadlineExceeded(TryAgain):
    """The budget of the hop or request (``budget_s``) ran out before its money could move."""

    code = "deadline_exceeded"
    template = "this could not be done within {budget_s:g} s; nothing was done: try again"


class Busy(TryAgain):
    """``waiting`` money steps of the same payer already queue in this process."""

    code = "busy"
    template = "{waiting} requests of this account are already waiting; nothing was done: try again"


class ProviderError(AirGateError):
    """``provider`` names the adapter; ``detail`` is for logs, never shown to a retailer as is."""

    code = "provider"
    template = "{provider}: {detail}"


class ProviderUnavailable(ProviderError):
    code = "provider_unavailable"


class NotSent(ProviderUnavailable):
    """The request never left AirGate, or the aggregator said it did not process it (connection
    refused, connect time-out, no token, 429): nothing can have been applied, so the top-up may go
    to another aggregator (core/routing/). A 5xx is not this: it may have been half-processed."""

    code = "not_sent"


class Throttled(ProviderUnavailable):
    """Not sent: the provider asks us to wait ``retry_after_s`` (Telegram's 429)."""

    code = "throttled"
    template = "{provider}: too many requests, retry after {retry_after_s} s"


class OutcomeUnknown(ProviderError):
    code = "outcome_unknown"


class ProviderRejected(ProviderError):
    code = "provider_rejected"
    template = "{provider} refused: {detail} ({error_code})"


class RecipientBlocked(ProviderRejected):
    """The user blocked the bot (or deleted their account): nothing reaches them there."""

    code = "recipient_blocked"
