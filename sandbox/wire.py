"""What every sandbox route shares: amounts, dates and the aggregator's error body.

Amounts travel as JSON numbers in major units. Requests are parsed with ``Decimal`` floats so
123.45 stays exactly 12345 cents; answers carry ``cents / 100`` as a float, whose shortest repr is
exactly the two-decimal amount.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import partial

from aiohttp import web

from core.money import MINOR_PER_MAJOR

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"  # Reloadly's dates, UTC

loads = partial(json.loads, parse_float=Decimal)


def major(amount_minor: int) -> int | float:
    whole, cents = divmod(amount_minor, MINOR_PER_MAJOR)
    return whole if not cents else amount_minor / MINOR_PER_MAJOR


def to_minor(value: object) -> int | None:
    """A JSON number in major units → cents; None for anything else or a fraction of a cent."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        return None
    try:
        scaled = Decimal(value) * MINOR_PER_MAJOR
    except InvalidOperation:
        return None
    if not scaled.is_finite() or scaled != scaled.to_integral_value():
        return None
    return int(scaled)


def format_date(at: datetime) -> str:
    return at.strftime(DATE_FORMAT)


def parse_date(text: str) -> datetime | None:
    """``YYYY-MM-DD HH:MM:SS`` or ``YYYY-MM-DD``, read as UTC; None when neither."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def error(status: int, code: str, message: str, path: str) -> web.Response:
    """Reloadly's error body: ``{timeStamp, message, path, errorCode, infoLink, details}``."""
    body: dict[str, object] = {
        "timeStamp": format_date(now()),
        "message": message,
        "path": path,
        "errorCode": code,
        "infoLink": None,
        "details": [],
    }
    return web.json_response(body, status=status)
