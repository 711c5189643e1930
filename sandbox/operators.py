"""The sandbox's operators (Kenya) and phone numbers, as the aggregator would know them.

The airtime operators mirror ``core/data/demo_ke.toml`` (ids 1-3, same ranges); each has a bundle
operator (ids 101-103, FIXED denominations at the demo bundles' prices). Numbers are detected with
phonenumbers' carrier data, so a ported number is detected by its original range, as a real
aggregator without a number-portability lookup would.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import phonenumbers
from phonenumbers import carrier

from sandbox.wire import major

COUNTRY = "KE"
CURRENCY = "KES"
CURRENCY_NAME = "Kenyan Shilling"


@dataclass(frozen=True, slots=True)
class Operator:
    operator_id: int
    name: str
    carrier: str  # phonenumbers' carrier name for the airtime operator's ranges
    bundle: bool
    min_minor: int | None = None  # RANGE operators
    max_minor: int | None = None
    fixed_minor: tuple[int, ...] = ()  # FIXED operators

    @property
    def denomination_type(self) -> str:
        return "FIXED" if self.fixed_minor else "RANGE"

    def accepts(self, amount_minor: int) -> bool:
        if self.fixed_minor:
            return amount_minor in self.fixed_minor
        assert self.min_minor is not None and self.max_minor is not None
        return self.min_minor <= amount_minor <= self.max_minor

    def to_json(self) -> dict[str, Any]:
        """Reloadly's operator object, the fields AirGate reads plus the common rest."""
        lo = major(self.min_minor) if self.min_minor is not None else None
        hi = major(self.max_minor) if self.max_minor is not None else None
        fixed = [major(a) for a in self.fixed_minor]
        return {
            "id": self.operator_id,
            "operatorId": self.operator_id,
            "name": self.name,
            "bundle": self.bundle,
            "data": self.bundle,
            "pin": False,
            "supportsLocalAmounts": True,
            "supportsGeographicalRechargePlans": False,
            "denominationType": self.denomination_type,
            "senderCurrencyCode": CURRENCY,
            "senderCurrencySymbol": "KSh",
            "destinationCurrencyCode": CURRENCY,
            "destinationCurrencySymbol": "KSh",
            "commission": 2.0,
            "internationalDiscount": 2.0,
            "localDiscount": 2.0,
            "minAmount": lo,
            "maxAmount": hi,
            "localMinAmount": lo,
            "localMaxAmount": hi,
            "country": {"isoName": COUNTRY, "name": "Kenya"},
            "fx": {"rate": 1.0, "currencyCode": CURRENCY},
            "fixedAmounts": fixed,
            "fixedAmountsDescriptions": {},
            "localFixedAmounts": fixed,
            "localFixedAmountsDescriptions": {},
            "suggestedAmounts": [],
            "logoUrls": [],
        }


# The demo catalog's bundle prices, in cents (a FIXED operator accepts only these).
_SAFARICOM_BUNDLES = (1_000, 2_000, 25_000, 100_000)
OPERATORS: dict[int, Operator] = {
    op.operator_id: op
    for op in (
        Operator(1, "Safaricom Kenya", "Safaricom", False, 500, 1_000_000),
        Operator(2, "Airtel Kenya", "Airtel", False, 500, 1_000_000),
        Operator(3, "Telkom Kenya", "Telkom", False, 1_000, 500_000),
        Operator(101, "Safaricom Kenya Bundles", "Safaricom", True, fixed_minor=_SAFARICOM_BUNDLES),
        Operator(102, "Airtel Kenya Bundles", "Airtel", True, fixed_minor=(1_000, 5_000, 25_000)),
        Operator(103, "Telkom Kenya Bundles", "Telkom", True, fixed_minor=(10_000,)),
    )
}
_AIRTIME_BY_CARRIER = {op.carrier: op for op in OPERATORS.values() if not op.bundle}


@lru_cache(maxsize=65_536)
def normalize(number: str, country: str) -> str | None:
    """The E.164 form of ``number`` (``+254…``, ``254…`` or national ``07…``), None if invalid.

    Cached: a load run sends the same few thousand numbers again and again.
    """
    text = number.strip().replace(" ", "")
    if not text or len(text) > 20:
        return None
    try:
        if text.startswith("+"):
            parsed = phonenumbers.parse(text, None)
        else:
            parsed = phonenumbers.parse(text, country)
            if not phonenumbers.is_valid_number(parsed):  # digits with the country code, no +
                parsed = phonenumbers.parse("+" + text, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    if phonenumbers.region_code_for_number(parsed) != country:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def detect(e164: str) -> Operator | None:
    """The airtime operator phonenumbers' carrier data assigns to the number, if one of ours."""
    name = carrier.name_for_number(phonenumbers.parse(e164, None), "en")
    return _AIRTIME_BY_CARRIER.get(name)


def for_country(country: str) -> list[Operator]:
    return list(OPERATORS.values()) if country == COUNTRY else []


@lru_cache(maxsize=65_536)
def international(number: str) -> str | None:
    """A valid number of any country written in E.164 (the SMS gateway's ``to``), else None."""
    try:
        parsed = phonenumbers.parse(number.strip(), None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
