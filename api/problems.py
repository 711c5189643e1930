"""Errors as ``application/problem+json`` (RFC 9457), one place where an error becomes a reply.

Invariant: a problem's ``type`` is ``urn:airgate:problem:<code>``, stable per error of the core
error tree (``AirGateError.code``) or of the API itself (``unauthorized``, ``insufficient_scope``,
``rate_limited``, ``validation``…); its text never carries a key, a PIN or a full phone number
(every number in it is masked as the logs mask them, core/logging.py).
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from core import errors
from core.logging import redact

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:airgate:problem:"

# The most specific class first: the first match decides the status.
_STATUS: tuple[tuple[type[errors.AirGateError], int], ...] = (
    (errors.InputError, 422),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.PartyInactive, 403),
    (errors.NotPermitted, 403),
    (errors.Refused, 409),
    (errors.StoreUnavailable, 503),
    (errors.TryAgain, 503),
    (errors.ProviderError, 502),
)
TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal error",
    502: "Bad gateway",
    503: "Service unavailable",
}
RETRY_AFTER_UNAVAILABLE_S = 2  # the database or Redis came back? ask again soon
RETRY_AFTER_BUSY_S = 1  # out of time or a full queue: nothing was done, the next try may pass


def status_of(exc: errors.AirGateError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + code,
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": redact(detail),
        **extra,
    }
    return web.Response(
        status=status,
        body=orjson.dumps(body),
        content_type=PROBLEM_JSON,
        headers=headers,
    )


# Fields an error may carry that a client may read as they are (amounts, counts, names of things).
_SHOWN_FIELDS = frozenset(
    {"available_minor", "needed_minor", "currency", "kind", "seconds_ago", "status", "asset"}
)


def from_error(exc: errors.AirGateError) -> web.Response:
    """The problem for a core error: its code, its English text (numbers masked) and the fields
    a client can act on (amounts in minor units, a field name for an input error)."""
    status = status_of(exc)
    extra = {k: v for k, v in exc.fields.items() if k in _SHOWN_FIELDS and _plain(v)}
    field = exc.fields.get("field")
    if isinstance(field, str):
        extra["errors"] = [{"field": field, "message": redact(str(exc))}]
    headers = None
    if isinstance(exc, errors.StoreUnavailable):
        headers = {"Retry-After": str(RETRY_AFTER_UNAVAILABLE_S)}
    elif isinstance(exc, errors.TryAgain):
        headers = {"Retry-After": str(RETRY_AFTER_BUSY_S)}
    return problem(status, exc.code, str(exc), headers=headers, **extra)


def _plain(value: object) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def validation(
    errors_: list[dict[str, str]], *, detail: str = "the request is not valid"
) -> web.Response:
    """422 naming each field that is wrong: ``errors: [{field, message}]``."""
    return problem(422, "validation", detail, errors=errors_)
