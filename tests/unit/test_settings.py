from __future__ import annotations

import pytest

from core.errors import SettingsError
from core.settings import load_settings


def test_defaults_are_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "COUNTRY", "HTTP_PORT"):
        monkeypatch.delenv(f"AIRGATE_{name}", raising=False)
    s = load_settings()
    assert s.effective_database_url == "sqlite+aiosqlite:///var/airgate.db"
    assert (s.redis_url, s.country, s.http_port) == ("", "KE", 8080)


def test_urls_get_async_drivers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRGATE_DATABASE_URL", "postgresql://u@db:5432/airgate")
    assert load_settings().database_url == "postgresql+asyncpg://u@db:5432/airgate"
    monkeypatch.setenv("AIRGATE_DATABASE_URL", "sqlite:///x.db")
    assert load_settings().database_url == "sqlite+aiosqlite:///x.db"


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("AIRGATE_HTTP_PORT", "abc", "valid integer"),
        ("AIRGATE_HTTP_PORT", "70000", "less than or equal to 65535"),
        ("AIRGATE_COUNTRY", "XX", "ISO 3166"),
        ("AIRGATE_DATABASE_URL", "mysql://x", "postgresql://"),
    ],
)
def test_bad_values_are_one_readable_line(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, words: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert name in message and words in message and "\n" not in message
