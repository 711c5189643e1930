"""The aggregator's wire format (Reloadly Airtime shape): JSON bodies to our values and back.

Amounts are major-unit JSON numbers read as Decimal, so ``123.45`` is exactly 12345 cents; dates
are UTC ``YYYY-MM-DD HH:MM:SS``. Anything unreadable raises :class:`Malformed`, which the adapter
turns into an unknown outcome for a send (core/providers/reloadly.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import partial
from typing import Any

import phonenumbers

from core.money import MINOR_PER_MAJOR
from core.providers.port import Outcome, ProviderOperator, ProviderTransaction

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"  # Reloadly's dates, UTC

# Reloadly's statuses as our outcomes. PROCESSING is still with the operator: ask again later.
# REFUNDED was charged, not applied, and credited back: as final a "no" as FAILED.
OUTCOMES = {
    "SUCCESSFUL": Outcome.DELIVERED,
    "PROCESSING": Outcome.UNKNOWN,
    "FAILED": Outcome.FAILED,
    "REFUNDED": Outcome.FAILED,
}
# The official Java SDK's samples (tests/fixtures/reloadly/) leave ``status`` out of the
# POST /topups answer and of report items: a transaction record without one is a completed
# top-up, SUCCESSFUL.
# An unknown status word is still unreadable (Malformed), never guessed.
NO_STATUS = "SUCCESSFUL"

_loads = partial(json.loads, parse_float=Decimal)  # 123.45 stays exactly 12345 cents


class Malformed(Exception):
    """A 2xx answer we cannot read: for a send, the outcome is unknown."""


def parse_json(raw: bytes) -> Any:
    try:
        return _loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Malformed(f"not JSON: {raw[:80]!r}") from exc


def error_fields(raw: bytes) -> tuple[str, str]:
    """``(errorCode, message)`` of an error body, whatever shape it has."""
    try:
        body = _loads(raw)
    except (ValueError, UnicodeDecodeError):
        return "", raw[:200].decode(errors="replace").strip()
    if not isinstance(body, dict):
        return "", str(body)[:200]
    return str(body.get("errorCode") or ""), str(body.get("message") or "")


def content(page: Any) -> list[Any]:
    content = page.get("content") if isinstance(page, dict) else None
    if not isinstance(content, list):
        raise Malformed("report: no content list")
    return content


def transaction(item: Any) -> ProviderTransaction:
    try:
        outcome = OUTCOMES[item.get("status") or NO_STATUS]
        delivered = item.get("deliveredAmount")
        reference = item.get("customIdentifier")
        return ProviderTransaction(
            reference=None if reference is None else str(reference),
            outcome=outcome,
            provider_ref=str(int(item["transactionId"])),
            operator_ref=str(item.get("operatorTransactionId") or "") or None,
            delivered_minor=(
                minor(delivered) if outcome is Outcome.DELIVERED and delivered is not None else None
            ),
            currency=str(
                item.get("deliveredAmountCurrencyCode") or item["requestedAmountCurrencyCode"]
            ),
            at=parse_date(str(item["transactionDate"])),
            message=str(item.get("message") or ""),
            **balance_info(item.get("balanceInfo")),
        )
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise Malformed(f"transaction: {exc!r}") from exc


def balance_info(info: Any) -> dict[str, Any]:
    """``balanceInfo`` (oldBalance, newBalance, cost, currencyCode; null in many report rows) as
    the port's charge fields. The SDK's samples leave ``cost`` out: then the charge is what the
    balance went down by."""
    if not isinstance(info, dict):
        return {}
    old, new, cost = info.get("oldBalance"), info.get("newBalance"), info.get("cost")
    before = minor(old) if old is not None else None
    after = minor(new) if new is not None else None
    if cost is not None:
        charged: int | None = minor(cost)
    else:
        charged = before - after if before is not None and after is not None else None
    currency = info.get("currencyCode")
    return {
        "charged_minor": charged,
        "charge_currency": str(currency) if currency else None,
        "balance_before_minor": before,
        "balance_after_minor": after,
    }


def operator(item: Any) -> ProviderOperator:
    try:
        local = bool(item.get("supportsLocalAmounts"))
        lo, hi = (
            (item.get("localMinAmount"), item.get("localMaxAmount"))
            if local
            else (item.get("minAmount"), item.get("maxAmount"))
        )
        fixed = (item.get("localFixedAmounts") if local else None) or item.get("fixedAmounts")
        return ProviderOperator(
            ref=str(int(item.get("operatorId") or item["id"])),
            name=str(item["name"]),
            country=str(item["country"]["isoName"]),
            currency=str(item["destinationCurrencyCode"]),
            bundle=bool(item.get("bundle") or item.get("data")),
            denomination_type=str(item["denominationType"]),
            min_minor=minor(lo) if lo is not None else None,
            max_minor=minor(hi) if hi is not None else None,
            fixed_amounts_minor=tuple(minor(a) for a in fixed or ()),
        )
    except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError) as exc:
        raise Malformed(f"operator: {exc!r}") from exc


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
    return utc(at).strftime(DATE_FORMAT)


def parse_date(text: str) -> datetime:
    """``2026-05-02 10:35:00`` (UTC) or ISO 8601 with an offset."""
    return utc(datetime.fromisoformat(text))


def utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def region(msisdn: str, default: str) -> str:
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(msisdn, None))
    except phonenumbers.NumberParseException:
        return default
    return region or default
