"""DT One's DVS API wire format (v1, OpenAPI 1.14.0): JSON bodies to our values and back.

Amounts are major-unit JSON numbers read as Decimal; dates are ISO 8601 (``2026-05-02T10:35:00Z``).
A transaction's ``status`` is ``{id, message, class: {id, message}}``; DT One asks clients to act on
the **class** (``COMPLETED``, ``DECLINED`` …) and read the status message (``DECLINED-BARRED-CREDIT-
PARTY``) for detail only, so :data:`OUTCOMES` is keyed by class name; the numeric ids are not read.
Anything unreadable raises :class:`Malformed`, which the adapter turns into an unknown outcome for
a send (core/providers/dtone.py). The spec itself: tests/fixtures/dtone/.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import partial
from typing import Any

from core.money import MINOR_PER_MAJOR
from core.providers.port import Outcome, ProviderOperator, ProviderTransaction

# DT One's status classes as our outcomes (docs/PROVIDERS.md, "DT One").
OUTCOMES = {
    "CREATED": Outcome.UNKNOWN,  # not confirmed yet: it may still be (we always auto-confirm)
    "CONFIRMED": Outcome.UNKNOWN,  # sent to the operator, no answer yet
    "SUBMITTED": Outcome.UNKNOWN,  # the operator has it and has not answered yet
    "COMPLETED": Outcome.DELIVERED,
    "REJECTED": Outcome.FAILED,  # refused by DT One's own rules (balance, limits): never sent
    "CANCELLED": Outcome.FAILED,  # never confirmed
    "DECLINED": Outcome.FAILED,  # refused by the operator: nothing applied, the hold is voided
    "REVERSED": Outcome.FAILED,  # reversed by DT One after completion: the debit came back
}
RANGED_AIRTIME = "RANGED_VALUE_RECHARGE"
FIXED_AIRTIME = "FIXED_VALUE_RECHARGE"
BUNDLE_BENEFITS = frozenset({"DATA", "SMS"})
# ISO 3166 alpha-2 (ours) to alpha-3 (DT One's country_iso_code), for the countries we serve.
ALPHA3 = {
    "KE": "KEN", "UG": "UGA", "TZ": "TZA", "RW": "RWA", "BI": "BDI", "ET": "ETH", "SO": "SOM",
    "SS": "SSD", "CD": "COD", "MW": "MWI", "ZM": "ZMB", "MZ": "MOZ", "NG": "NGA", "GH": "GHA",
}  # fmt: skip
ALPHA2 = {alpha3: alpha2 for alpha2, alpha3 in ALPHA3.items()}

_loads = partial(json.loads, parse_float=Decimal)  # 123.45 stays exactly 12345 cents


class Malformed(Exception):
    """A 2xx answer we cannot read: for a send, the outcome is unknown."""


def parse_json(raw: bytes) -> Any:
    try:
        return _loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Malformed(f"not JSON: {raw[:80]!r}") from exc


def error_fields(raw: bytes) -> tuple[str, str]:
    """``(code, message)`` of the first entry of an ``{"errors": [{code, message}]}`` body."""
    try:
        body = _loads(raw)
    except (ValueError, UnicodeDecodeError):
        return "", raw[:200].decode(errors="replace").strip()
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return "", str(body)[:200]
    first = errors[0]
    return str(first.get("code") or ""), str(first.get("message") or "")


def status_of(item: Any) -> tuple[str, str]:
    """``(class, status)`` names; a status without its class is classed by its first word
    (every DT One status message starts with its class: ``DECLINED-BARRED-CREDIT-PARTY``)."""
    status = item.get("status")
    if not isinstance(status, dict):
        raise Malformed(f"transaction without a status: {status!r}")
    message = str(status.get("message") or "")
    klass = status.get("class")
    name = str(klass.get("message") or "") if isinstance(klass, dict) else ""
    name = name or message.split("-", 1)[0]
    if name.upper() not in OUTCOMES:
        raise Malformed(f"unknown status class {name!r} ({message!r})")
    return name.upper(), message or name


def transaction(item: Any) -> ProviderTransaction:
    try:
        klass, message = status_of(item)
        outcome = OUTCOMES[klass]
        values = item.get("adjusted_values") or item.get("requested_values") or {}
        destination = values.get("destination") or {}
        delivered = destination.get("amount")
        reference = item.get("external_id")
        return ProviderTransaction(
            reference=None if reference is None else str(reference),
            outcome=outcome,
            provider_ref=str(int(item["id"])),
            operator_ref=str(item.get("operator_reference") or "") or None,
            delivered_minor=(
                minor(delivered) if outcome is Outcome.DELIVERED and delivered is not None else None
            ),
            currency=str(destination.get("unit") or _price_unit(item)),
            at=parse_date(str(item["creation_date"])),
            message=message,
            **_wholesale(item.get("prices")),
        )
    except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError) as exc:
        raise Malformed(f"transaction: {exc!r}") from exc


def _wholesale(prices: Any) -> dict[str, Any]:
    """``prices.wholesale`` as the port's charge: its amount and fee, what DT One takes from the
    account (the spec's "Balances": wholesale price and fee, captured when COMPLETED)."""
    wholesale = prices.get("wholesale") if isinstance(prices, dict) else None
    if not isinstance(wholesale, dict) or wholesale.get("amount") is None:
        return {}
    fee = wholesale.get("fee")
    charged = minor(wholesale["amount"]) + (minor(fee) if fee is not None else 0)
    unit = wholesale.get("unit")
    return {"charged_minor": charged, "charge_currency": str(unit) if unit else None}


def _price_unit(item: dict[str, Any]) -> str:
    """The currency when no destination amount is given: the product's destination unit."""
    product = item.get("product") or {}
    return str(((product.get("destination") or {}).get("unit")) or "")


def product(item: Any) -> ProviderOperator:
    """A DT One product as the port's operator: ``ref`` is the product id (what a catalog's
    ``providers.dtone`` names); a ranged product is RANGE, a fixed one FIXED at its amount."""
    try:
        destination = item["destination"]
        amount = destination["amount"]
        ranged = isinstance(amount, dict)
        country = str(item["operator"]["country"]["iso_code"])
        return ProviderOperator(
            ref=str(int(item["id"])),
            name=str(item["name"]),
            country=ALPHA2.get(country, country),
            currency=str(destination["unit"]),
            bundle=_is_bundle(item),
            denomination_type="RANGE" if ranged else "FIXED",
            min_minor=minor(amount["min"]) if ranged else None,
            max_minor=minor(amount["max"]) if ranged else None,
            fixed_amounts_minor=() if ranged else (minor(amount),),
        )
    except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError) as exc:
        raise Malformed(f"product: {exc!r}") from exc


def _is_bundle(item: dict[str, Any]) -> bool:
    """A product whose benefits include data or SMS (airtime gives TALKTIME or CREDITS)."""
    kinds = {str(b.get("type")) for b in item.get("benefits") or () if isinstance(b, dict)}
    return bool(kinds & BUNDLE_BENEFITS)


def fixed_amount(item: Any) -> int | None:
    """A fixed product's destination amount in minor units; None for a ranged one."""
    amount = ((item or {}).get("destination") or {}).get("amount")
    return None if amount is None or isinstance(amount, dict) else minor(amount)


def major(amount_minor: int) -> int | float:
    """Cents → a JSON number in major units; ``cents / 100``'s repr is the exact 2-decimal text."""
    whole, cents = divmod(amount_minor, MINOR_PER_MAJOR)
    return whole if not cents else amount_minor / MINOR_PER_MAJOR


def minor(value: Any) -> int:
    """A JSON number in major units (Decimal, int or numeric string) → cents, half up."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise ValueError(f"not an amount: {value!r}")
    scaled = Decimal(value) * MINOR_PER_MAJOR
    return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def date(at: datetime) -> str:
    return utc(at).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_date(text: str) -> datetime:
    """ISO 8601, ``Z`` or an offset; a date without one is UTC."""
    return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
