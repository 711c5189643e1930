"""The aggregator accounts and the routes as settings (``AIRGATE_PROVIDERS``, ``AIRGATE_ROUTES``,
``AIRGATE_ROUTE_*``): :class:`RoutingSettings`, which core/settings.py's ``Settings`` extends.

Invariant: with neither ``AIRGATE_PROVIDERS`` nor ``AIRGATE_ROUTES`` set, there is exactly one
account, named after ``AIRGATE_PROVIDER`` and made of the ``AIRGATE_PROVIDER_*`` settings, so a
setup from before routing runs as it did. Every name a route gives is a declared account (checked
at start-up, with the nearest name suggested).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode

from core.providers import registry as providers
from core.setting_values import GivenSecret, HttpUrl, closest, parse_json

ANY_OPERATOR = "*"  # the route of every operator without one of its own
ACCOUNT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,23}$")  # shown in Redis keys, metrics, the CLI
FACE_VALUE_BPS = 10_000  # price_bps of an account that charges exactly the face value


class ProviderAccount(BaseModel):
    """One account at an aggregator: which adapter speaks to it, where, with what credentials,
    what it charges (``price_bps`` of the face value: 9,800 is a 2 % discount) and the float under
    which the platform's operators are alerted (0: never)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    adapter: str = providers.DEFAULT
    url: HttpUrl
    auth_url: HttpUrl | None = None  # None: the same as url
    key: GivenSecret  # a client id or an API key: never shown either
    secret: GivenSecret
    price_bps: int = Field(default=FACE_VALUE_BPS, ge=1, le=2 * FACE_VALUE_BPS)
    low_float_minor: int = Field(default=0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, value: Any) -> Any:
        for key in value if isinstance(value, dict) else ():
            if key not in cls.model_fields:
                raise ValueError(f"unknown key {key!r}{closest(key, cls.model_fields)}")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not ACCOUNT_NAME.match(value):
            raise ValueError(
                "a name is up to 24 of a-z, 0-9, _ and -, starting with a letter or digit"
            )
        return value

    @field_validator("adapter")
    @classmethod
    def _adapter(cls, value: str) -> str:
        if value not in providers.ADAPTERS:
            known = ", ".join(providers.ADAPTERS)
            raise ValueError(
                f"unknown adapter {value!r}{closest(value, providers.ADAPTERS)}: one of {known}"
            )
        return value


class RoutingSettings(BaseSettings):
    """The routing group of the settings (docs/PROVIDERS.md, "Routing")."""

    # Empty: one account from AIRGATE_PROVIDER and AIRGATE_PROVIDER_*. Else JSON, a list of
    # {"name", "adapter", "url", "key", "secret", "price_bps", "low_float_minor"} or an object
    # of them by name; the order is the default route.
    providers: Annotated[dict[str, ProviderAccount], NoDecode] = {}
    # Per operator code (or "*" for the rest), the accounts to try in order, as JSON.
    routes: Annotated[dict[str, list[str]], NoDecode] = {}
    # Try the cheapest healthy account first (price_bps), the route's order breaking ties.
    route_prefer_cheapest: bool = False
    # The breaker of an (account, operator) opens after this many failures in a row (not sent,
    # unavailable, unknown, slower than route_slow_ms), stays open this long, then lets one probe.
    route_failures_to_open: int = Field(default=5, ge=1, le=1000)
    route_open_s: float = Field(default=30.0, gt=0, le=3600)
    route_slow_ms: int = Field(default=5_000, ge=1)
    # The worker asks every account its balance this often (an arq cron: seconds of a minute, or
    # whole minutes past 60).
    float_poll_interval_s: int = Field(default=60, ge=1, le=3600)

    @field_validator("providers", mode="before")
    @classmethod
    def _accounts(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = parse_json(value) if value.strip() else {}
        if isinstance(value, list):
            by_name: dict[str, Any] = {}
            for item in value:
                name = item.get("name") if isinstance(item, dict) else None
                if not isinstance(name, str):
                    raise ValueError('each account needs a "name"')
                if name in by_name:
                    raise ValueError(f"account {name!r} is declared twice")
                by_name[name] = item
            return by_name
        if not isinstance(value, dict):
            raise ValueError(
                'use a JSON list: [{"name": "alpha", "url": …, "key": …, "secret": …}]'
            )
        return {
            name: {**item, "name": item.get("name", name)} if isinstance(item, dict) else item
            for name, item in value.items()
        }

    @field_validator("providers")
    @classmethod
    def _names_match(cls, value: dict[str, ProviderAccount]) -> dict[str, ProviderAccount]:
        for key, account in value.items():
            if key != account.name:
                raise ValueError(f"account {key!r} is named {account.name!r} inside")
        return value

    @field_validator("routes", mode="before")
    @classmethod
    def _routes(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = parse_json(value) if value.strip() else {}
        if not isinstance(value, dict):
            raise ValueError(
                'use a JSON object: {"safaricom-ke": ["alpha", "beta"], "*": ["beta"]}'
            )
        return value

    @field_validator("routes")
    @classmethod
    def _route_lists(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for operator, names in value.items():
            if not names:
                raise ValueError(f"the route of {operator!r} names no account")
            if len(set(names)) != len(names):
                raise ValueError(f"the route of {operator!r} names an account twice")
        return value


def check_routes(routes: dict[str, list[str]], *, accounts: list[str]) -> None:
    """ValueError naming the first route entry that is not a declared account."""
    for operator, names in routes.items():
        for name in names:
            if name not in accounts:
                known = ", ".join(accounts)
                raise ValueError(
                    f"the route of {operator!r} names {name!r}{closest(name, accounts)}, "
                    f"not an account; the accounts are {known}"
                )
