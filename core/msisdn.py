"""Phone numbers: accept local and international input, keep E.164."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers

from core.errors import InvalidMsisdn

MAX_INPUT_CHARS = 32  # longer input is not a phone number; refuse before parsing


def normalize(raw: str, *, country: str) -> str:
    """``"0788 123-456"`` in KE → ``"+254788123456"``; anything invalid raises InvalidMsisdn."""
    text = raw.strip()
    if not text or len(text) > MAX_INPUT_CHARS:
        raise InvalidMsisdn(value=raw[:MAX_INPUT_CHARS], country=country)
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, country)
    except phonenumbers.NumberParseException:
        raise InvalidMsisdn(value=raw, country=country) from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidMsisdn(value=raw, country=country)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=65_536)
def national(msisdn: str) -> str:
    """``"+254788123456"`` → ``"0788123456"``: how a local user writes it (screens, receipts)."""
    number = phonenumbers.parse(msisdn, None)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL).replace(
        " ", ""
    )


@lru_cache(maxsize=65_536)
def region(msisdn: str) -> str:
    """``"+255712345678"`` → ``"TZ"``: the country whose plan the number is in ("" if none)."""
    return phonenumbers.region_code_for_number(phonenumbers.parse(msisdn, None)) or ""


def is_foreign(msisdn: str, *, country: str) -> bool:
    """A valid number of another country's plan: ``+255…`` typed in Kenya is Tanzanian, not a
    Kenyan number without an operator."""
    return region(msisdn) != country


def masked(msisdn: str) -> str:
    """For logs: never a full phone number (``+2547881****56``)."""
    return msisdn[:-6] + "****" + msisdn[-2:] if len(msisdn) > 8 else "****"


def carrier_of(msisdn: str) -> tuple[str, str]:
    """The carrier phonenumbers' data assigns to the number's range ("" when unknown) and the
    number's region, from one parse."""
    from phonenumbers import carrier

    number = phonenumbers.parse(msisdn, None)
    region = phonenumbers.region_code_for_number(number) or ""
    return carrier.name_for_number(number, "en"), region
