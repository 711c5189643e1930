"""What a value of a setting may be: the checks and the annotated types core/settings.py declares
its fields with, and the two helpers its error lines use (the nearest known name, a URL with its
password masked). Each check raises ValueError with words a person acts on; core/settings.py turns
that into the one line naming the variable."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit, urlunsplit

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


SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379


@dataclass(frozen=True, slots=True)
class SentinelUrl:
    """A ``redis+sentinel://[[user]:password@]host[:port],host[:port]…/master[/db]`` URL, read:
    the sentinels to ask, the name they watch the primary under, and how to log in to it (the
    credentials are the primary's and replicas'; the sentinels are asked without)."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:  # never the password
        hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"SentinelUrl({hosts}/{self.master}/{self.db})"


def sentinel_url(url: str) -> SentinelUrl:
    """Read a ``redis+sentinel://`` URL; ValueError says what is wrong with it."""
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        raise ValueError(f"not a {SENTINEL_SCHEME}:// URL")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    sentinels = tuple(_host_port(item) for item in hosts.split(",") if item)
    path = [segment for segment in parts.path.split("/") if segment]
    if not sentinels or not 1 <= len(path) <= 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError(
            f"use {SENTINEL_SCHEME}://host:port,host:port/master or …/master/db"
            " (the sentinels, the name they watch the primary under)"
        )
    username, _, password = userinfo.partition(":")
    return SentinelUrl(
        sentinels=sentinels,
        master=unquote(path[0]),
        db=int(path[1]) if len(path) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
    )


CLUSTER_SCHEME = "redis+cluster"
CLUSTER_PORT = 6379


@dataclass(frozen=True, slots=True)
class ClusterUrl:
    """A ``redis+cluster://[[user]:password@]host[:port],host[:port]…/`` URL, read: some of the
    cluster's nodes to start from (the client learns the rest from them) and how to log in."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:  # never the password
        return f"ClusterUrl({','.join(f'{host}:{port}' for host, port in self.nodes)})"


def cluster_url(url: str) -> ClusterUrl:
    """Read a ``redis+cluster://`` URL; ValueError says what is wrong with it."""
    parts = urlsplit(url)
    if parts.scheme != CLUSTER_SCHEME:
        raise ValueError(f"not a {CLUSTER_SCHEME}:// URL")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    nodes = tuple(_host_port(item, CLUSTER_PORT, "node") for item in hosts.split(",") if item)
    if not nodes or parts.path.strip("/"):
        raise ValueError(
            f"use {CLUSTER_SCHEME}://host:port,host:port/ (some of the cluster's nodes; a"
            " cluster has no database number)"
        )
    username, _, password = userinfo.partition(":")
    return ClusterUrl(nodes, unquote(username) or None, unquote(password) or None)


def _host_port(
    item: str, default_port: int = SENTINEL_PORT, what: str = "sentinel"
) -> tuple[str, int]:
    host, colon, port = item.rpartition(":") if not item.endswith("]") else (item, "", "")
    if not colon:
        host, port = item, str(default_port)
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"a {what} is host:port, not {item!r}")
    return host, int(port)


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
