"""What a value of a setting may be: the checks and the annotated types core/settings.py declares
its fields with, and the two helpers its error lines use (the nearest known name, a URL with its
password masked). Each check raises ValueError with words a person acts on; core/settings.py turns
that into the one line naming the variable."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from ipaddress import ip_address
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import AfterValidator, Field, SecretStr

MIN_SECRET_CHARS = 16
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
SENDER_ID = re.compile(r"^([A-Za-z0-9 ]{1,11}|\+?[0-9]{1,15})?$")
_BOT_TOKEN = re.compile(r"^([0-9]+:[A-Za-z0-9_-]+)?$")
_WEBHOOK_SECRET = re.compile(r"^[A-Za-z0-9_-]{0,256}$")  # Telegram's rule for secret_token


def closest(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the known name nearest to a mistyped one, else ``""``."""
    match = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def masked_url(url: str) -> str:
    """``url`` with its password, if any, as ``***``: what a repr or an error line may show."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("use an http:// or https:// URL")
    return value


def _host(value: str) -> str:
    try:
        ip_address(value)
    except ValueError:
        if not _HOST_NAME.match(value):
            raise ValueError("not a host name or IP address") from None
    return value


def _kept_or_long(value: SecretStr) -> SecretStr:
    if 0 < len(value) < MIN_SECRET_CHARS:
        raise ValueError(
            f"leave it empty (generated) or give at least {MIN_SECRET_CHARS} characters"
        )
    return value


def _not_empty(value: SecretStr) -> SecretStr:
    if not value:
        raise ValueError("must not be empty")
    return value


def _bot_token(value: SecretStr) -> SecretStr:
    if not _BOT_TOKEN.match(value.get_secret_value()):
        raise ValueError("a bot token reads <bot id>:<secret>, as @BotFather gives it")
    return value


def _webhook_secret(value: SecretStr) -> SecretStr:
    if not _WEBHOOK_SECRET.match(value.get_secret_value()):
        raise ValueError("Telegram allows up to 256 of A-Z, a-z, 0-9, _ and -")
    return value


def parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at character {exc.pos})") from None


HttpUrl = Annotated[str, AfterValidator(_http_url)]
Host = Annotated[str, AfterValidator(_host)]
# Empty: generated once into var_dir (the embedded defaults); else long enough to be one.
KeptSecret = Annotated[SecretStr, AfterValidator(_kept_or_long)]
GivenSecret = Annotated[SecretStr, AfterValidator(_not_empty)]
Seconds = Annotated[int, Field(ge=1)]
# Telegram's own rules for a bot token and a webhook's secret_token.
BotToken = Annotated[SecretStr, AfterValidator(_bot_token)]
WebhookSecret = Annotated[KeptSecret, AfterValidator(_webhook_secret)]
