"""structlog set-up: key-value lines for people, JSON for machines (``AIRGATE_LOG_JSON``).

Invariant: no line carries a PIN, a secret or a full phone number, whoever wrote it.

- A traceback is the plain text of the stack, never its frames' local variables: rich's default
  shows them, and those locals are the ``Settings`` (every secret), the typed PIN and the caller's
  number. JSON lines carry the same text as ``"exception"``.
- Our own lines go through structlog (stdout). The standard library's loggers are all third
  parties', and they speak at WARNING and above only, whatever ``AIRGATE_LOG_LEVEL`` says: below
  it, python-telegram-bot logs the Bot API URL (the token) and every call's parameters, httpx,
  httpcore and aiohttp URLs, SQLAlchemy and asyncpg statements with their parameters, arq every
  job's arguments (a customer's number). Their lines (stderr) are rendered as ours are.
- Every rendered line, ours or theirs, is redacted last (defence in depth): each secret given to
  :func:`configure` or :func:`hide` becomes ``****``, an API key keeps only its prefix
  (``agk_AbCdEfGh****``), and a run of 9 to 15 digits (a phone number in any form) is masked as
  :func:`core.msisdn.masked` does.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from typing import Any, TextIO
from urllib.parse import urlparse

import structlog
from structlog.types import EventDict, Processor, WrappedLogger

from core.msisdn import masked

# A phone number in any form a line may hold it (+254788123456, 254788123456, 0788123456): not
# part of a word, a dotted or dashed token (an address, a version, a UUID).
PHONE_RUN = re.compile(r"(?<![\w.-])\+?\d{9,15}(?![\w-])")
# An API key (core/services/apikeys.py): its visible prefix stays, the rest never reaches a line.
API_KEY_RUN = re.compile(r"(agk_[A-Za-z0-9_-]{8})[A-Za-z0-9_-]+")
MIN_SECRET_CHARS = 6  # shorter values would mask ordinary words; no real secret is that short
THIRD_PARTY_FLOOR = logging.WARNING
SECRET_SETTINGS = (
    "pin_pepper",
    "ussd_secret",
    "telegram_webhook_secret",
    "telegram_token",
    "provider_client_secret",
    "dtone_api_key",
    "dtone_api_secret",
    "sms_api_key",
)

_hidden: set[str] = set()  # every secret the process holds; masked in every line


def hide(*values: object) -> None:
    """Mask these values in every line from now on (a secret loaded after :func:`configure`:
    one generated into ``var_dir``)."""
    for value in values:
        text = _plain(value)
        if len(text) >= MIN_SECRET_CHARS:
            _hidden.add(text)


def _plain(value: object) -> str:
    """A secret's text, held as ``str`` or as pydantic's ``SecretStr``."""
    reveal = getattr(value, "get_secret_value", None)
    return str(reveal() if callable(reveal) else value)


def redact(line: str) -> str:
    """``line`` with every hidden secret as ``****`` and every phone number masked."""
    for secret in sorted(_hidden, key=len, reverse=True):  # a secret inside another: the longer
        if secret in line:
            line = line.replace(secret, "****")
    line = API_KEY_RUN.sub(r"\1****", line)
    return PHONE_RUN.sub(lambda match: masked(match.group()), line)


SANDBOX_DEFAULT = "sandbox"  # the sandbox's credentials: words in every log line, not secrets


def secrets_of(settings: Any) -> list[str]:
    """The secret values in ``settings``: the secret settings that differ from their defaults
    (the sandbox's ``sandbox`` is not a secret), gateways' own secrets, aggregator accounts' keys
    and secrets, URL passwords. Plain
    strings or pydantic ``SecretStr``."""

    value = _plain
    fields = type(settings).model_fields
    found = [
        value(getattr(settings, name))
        for name in SECRET_SETTINGS
        if value(getattr(settings, name)) != value(fields[name].default)
    ]
    found += [value(gateway.secret) for gateway in settings.ussd_gateways.values()]
    for account in getattr(settings, "providers", {}).values():  # AIRGATE_PROVIDERS' own
        found += [v for v in (value(account.key), value(account.secret)) if v != SANDBOX_DEFAULT]
    for name in ("database_url", "redis_url"):
        password = urlparse(value(getattr(settings, name))).password
        found += [password] if password else []
    return [item for item in found if item]


def _redacted(renderer: Processor) -> Processor:
    def render(logger: WrappedLogger, name: str, event_dict: EventDict) -> str:
        return redact(str(renderer(logger, name, event_dict)))

    return render


def _level(name: str) -> int:
    number = logging.getLevelNamesMapping().get(name.upper())
    if number is None:
        raise ValueError(f"unknown log level {name!r}")
    return number


def configure(*, level: str, json: bool, secrets: Iterable[object] = ()) -> None:
    """Log at ``level`` (third parties at WARNING at least), as JSON or key-value lines; mask
    ``secrets`` (:func:`secrets_of`) in every line."""
    threshold = _level(level)
    hide(*secrets)
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    # JSON: the traceback as text under "exception"; the console renderer writes it itself.
    tracebacks: list[Processor] = [structlog.processors.format_exc_info] if json else []
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            stamp,
            *tracebacks,
            _redacted(renderer),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(),
        # Not cached: a module's logger used once would keep this level and stream for good, deaf
        # to a later configure() or write_to(). Costs about 1.5 us a line (measured).
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                stamp,
                *tracebacks,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _redacted(renderer),
            ],
        )
    )
    # On the handler too: a library that sets its own logger's level still stops here.
    handler.setLevel(max(threshold, THIRD_PARTY_FLOOR))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(threshold, THIRD_PARTY_FLOOR))


def write_to(stream: TextIO) -> None:
    """Send every line, ours and third parties', to ``stream`` instead of stdout and stderr
    (``airgate demo --phone``: the phone has the terminal)."""
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(stream))
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(stream)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A module's logger; bind ``topup_id``/``channel``/``session_id`` per unit of work. Never
    log a PIN, a token or a full phone number (core.msisdn.masked)."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
