"""Money is integers in minor units; discounts are basis points (1 bp = 0.01 %)."""

from __future__ import annotations

BPS_PER_UNIT = 10_000
MINOR_PER_MAJOR = 100  # KES, and every currency in the demo catalog, has 2 decimals


def airtime_asset(operator_code: str) -> str:
    return f"AIRTIME:{operator_code}"


def cash_asset(currency: str) -> str:
    return f"CASH:{currency}"


def discounted_price(face_minor: int, discount_bps: int) -> int:
    """Price of ``face_minor`` of stock at ``discount_bps``, rounded half up to the minor unit."""
    if not 0 <= discount_bps <= BPS_PER_UNIT:
        raise ValueError("discount must be between 0 and 10000 bps")
    return (face_minor * (BPS_PER_UNIT - discount_bps) + BPS_PER_UNIT // 2) // BPS_PER_UNIT


def parse_major(text: str) -> int:
    """``"1,500.50"`` → 150050. Refuses more than two decimals, signs and anything non-numeric."""
    cleaned = text.strip().replace(",", "").replace("_", "")
    whole, _, frac = cleaned.partition(".")
    digits = whole + frac
    if not (whole and digits.isascii() and digits.isdigit()) or len(frac) > 2 or len(whole) > 12:
        raise ValueError(f"{text!r} is not an amount")
    return int(whole) * MINOR_PER_MAJOR + int(frac.ljust(2, "0") or 0)


def format_minor(amount_minor: int, currency: str = "") -> str:
    sign = "-" if amount_minor < 0 else ""
    major, minor = divmod(abs(amount_minor), MINOR_PER_MAJOR)
    text = f"{sign}{major:,}" + (f".{minor:02d}" if minor else "")
    return f"{currency} {text}".strip()
