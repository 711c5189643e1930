"""Every setting refuses a bad value in one line naming its variable; no repr shows a secret."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import typer.main
from click import Command, Group
from pydantic import SecretStr

from core.errors import SettingsError
from core.settings import USSD_GATEWAY_NAMES, Settings, UssdGateway, load_settings
from sandbox.config import SandboxConfig
from ussd.gateway import guard_for

PASSWORD = "pg-pass-4f9c2e"
SECRETS = {
    "AIRGATE_PIN_PEPPER": "pepper-1a2b3c4d5e6f7a8b",
    "AIRGATE_PROVIDER_CLIENT_SECRET": "client-secret-9d8c7b",
    "AIRGATE_SMS_API_KEY": "sms-key-6e5d4c3b",
    "AIRGATE_TELEGRAM_TOKEN": "123456:token-secret-aa11bb",
    "AIRGATE_TELEGRAM_WEBHOOK_SECRET": "hook-secret-cc22dd33",
    "AIRGATE_USSD_SECRET": "ussd-secret-ee44ff55",
}

# One bad value per setting and words its one line must say. A new field without a case here
# fails test_every_setting_has_a_bad_value_case.
BAD_VALUES: dict[str, tuple[str, str]] = {
    "var_dir": ("/dev/null", "not a folder"),
    "database_url": (f"mysql://u:{PASSWORD}@db/x", "postgresql://"),
    "redis_url": (f"http://u:{PASSWORD}@cache:6379", "redis://"),
    "queue_redis_url": (f"redis+sentinel://:{PASSWORD}@s1:26379,s2:26379/", "…/master/db"),
    "queue_redis_wait_replicas": ("-1", "greater than or equal to 0"),
    "queue_redis_wait_ms": ("0", "greater than or equal to 1"),
    "redis_timeout_s": ("0", "greater than 0"),
    "redis_connect_timeout_s": ("soon", "valid number"),
    "redis_health_check_s": ("-1", "greater than or equal to 0"),
    "db_pool_size": ("0", "greater than or equal to 1"),
    "db_max_overflow": ("-1", "greater than or equal to 0"),
    "db_lookup_connections": ("many", "valid integer"),
    "db_timeout_s": ("-1", "greater than or equal to 0"),
    "db_connect_timeout_s": ("0", "greater than 0"),
    "db_pool_timeout_s": ("soon", "valid number"),
    "db_pgbouncer": ("maybe", "valid boolean"),
    "country": ("XX", "ISO 3166"),
    "timezone": ("Mars/Olympus", "IANA time zone"),
    "http_host": ("not a host", "host name or IP address"),
    "http_port": ("70000", "less than or equal to 65535"),
    "pin_pepper": ("short", "at least 16 characters"),
    "pin_max_attempts": ("0", "greater than or equal to 1"),
    "provider": ("reloadlyy", "unknown aggregator 'reloadlyy' (did you mean 'reloadly'?)"),
    "provider_url": ("127.0.0.1:8090", "http:// or https://"),
    "provider_auth_url": ("ftp://auth", "http:// or https://"),
    "provider_client_id": ("", "at least 1 character"),
    "provider_client_secret": ("", "must not be empty"),
    "provider_timeout_s": ("0", "greater than 0"),
    "dtone_url": ("dvs-api.dtone.com/v1", "http:// or https://"),
    "dtone_api_key": ("", "must not be empty"),
    "dtone_api_secret": ("", "must not be empty"),
    "dtone_settle_s": ("-1", "greater than or equal to 0"),
    "provider_connect_timeout_s": ("soon", "valid number"),
    "provider_max_connections": ("0", "greater than or equal to 1"),
    "sms_url": ("sms.example", "http:// or https://"),
    "sms_username": ("", "at least 1 character"),
    "sms_api_key": ("", "must not be empty"),
    "sms_sender": ("A sender name far too long", "sender ID"),
    "sandbox_host": ("bad host!", "host name or IP address"),
    "sandbox_port": ("0", "greater than or equal to 1"),
    "telegram_token": ("not-a-token", "<bot id>:<secret>"),
    "telegram_api_url": ("api.telegram.org", "http:// or https://"),
    "telegram_webhook_url": ("http://example.com/telegram/webhook", "https://"),
    "telegram_webhook_secret": ("has spaces in it!", "A-Z, a-z, 0-9"),
    "telegram_invite_ttl_s": ("59", "greater than or equal to 60"),
    "telegram_rate_per_s": ("0", "greater than 0"),
    "telegram_chat_interval_s": ("61", "less than or equal to 60"),
    "topup_daily_limit_minor": ("-1", "greater than or equal to 0"),
    "topup_repeat_window_s": ("2m", "valid integer"),
    "topup_status_backoff_s": ("[]", "at least 1 item"),
    "topup_unknown_window_s": ("0", "greater than or equal to 1"),
    "case_answer_s": ("59", "greater than or equal to 60"),
    "case_lookup_timeout_s": ("0", "greater than 0"),
    "reconcile_hour": ("24", "less than or equal to 23"),
    "worker_max_jobs": ("0", "greater than or equal to 1"),
    "sweeper_interval_s": ("61", "less than or equal to 60"),
    "callback_timeout_s": ("61", "less than or equal to 60"),
    "callback_backoff_first_s": ("0", "greater than 0"),
    "callback_backoff_max_s": ("1h", "valid number"),
    "callback_window_s": ("0", "greater than or equal to 1"),
    "callback_rotation_grace_s": ("-1", "greater than or equal to 0"),
    "callback_allow_private": ("perhaps", "valid boolean"),
    "callback_allow_http": ("2", "valid boolean"),
    "sweeper_stale_s": ("0", "greater than or equal to 1"),
    "low_stock_minor": ("-5", "greater than or equal to 0"),
    "daily_report_hour": ("24", "less than or equal to 23"),
    "ussd_session_ttl_s": ("10", "greater than or equal to 30"),
    "telegram_session_ttl_s": ("10", "greater than or equal to 60"),
    "ussd_secret": ("short", "at least 16 characters"),
    "ussd_gateways": ("{bad", "not JSON"),
    "log_level": ("verbose", "DEBUG, INFO, WARNING, ERROR or CRITICAL"),
    "log_json": ("maybe", "valid boolean"),
    "http_header_timeout_s": ("0", "greater than 0"),
    "http_body_timeout_s": ("301", "less than or equal to 300"),
    "http_max_body_bytes": ("1024", "greater than or equal to 4096"),
    "ready_timeout_s": ("never", "valid number"),
    "api_rate_per_s": ("0", "greater than 0"),
    "api_burst": ("0", "greater than or equal to 1"),
    "api_idempotency_ttl_s": ("5", "greater than or equal to 60"),
    "ops_host": ("bad host!", "host name or IP address"),
    "ops_port": ("65536", "less than or equal to 65535"),
    "providers": ('[{"name": "Alpha!", "url": "http://a", "key": "k", "secret": "s"}]', "a-z"),
    "routes": ('{"*": []}', "names no account"),
    "route_prefer_cheapest": ("cheap", "valid boolean"),
    "route_failures_to_open": ("0", "greater than or equal to 1"),
    "route_open_s": ("0", "greater than 0"),
    "route_slow_ms": ("0", "greater than or equal to 1"),
    "float_poll_interval_s": ("0", "greater than or equal to 1"),
    "hop_deadline_s": ("0", "greater than 0"),
    "telegram_deadline_s": ("61", "less than or equal to 60"),
    "api_deadline_s": ("soon", "valid number"),
    "hot_row_queue": ("-1", "greater than or equal to 0"),
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets: the suite's own AIRGATE_DB_* and AIRGATE_TEST_* stay out of it."""
    for name in os.environ:
        if name.upper().startswith("AIRGATE_"):
            monkeypatch.delenv(name)


def refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> str:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    line = str(info.value)
    assert "\n" not in line and line.startswith(f"invalid setting {name}: "), line
    return line


def test_every_setting_has_a_bad_value_case() -> None:
    assert set(BAD_VALUES) == set(Settings.model_fields)


@pytest.mark.parametrize(("field", "bad"), sorted(BAD_VALUES.items()), ids=sorted(BAD_VALUES))
def test_a_bad_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, field: str, bad: tuple[str, str]
) -> None:
    value, words = bad
    line = refused(monkeypatch, f"AIRGATE_{field.upper()}", value)
    assert words in line
    assert PASSWORD not in line


def test_defaults_are_embedded() -> None:
    s = load_settings()
    assert s.effective_database_url == "sqlite+aiosqlite:///var/airgate.db"
    assert (s.redis_url, s.country, s.http_port) == ("", "KE", 8080)


def test_urls_get_async_drivers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRGATE_DATABASE_URL", "postgresql://u@db:5432/airgate")
    assert load_settings().database_url == "postgresql+asyncpg://u@db:5432/airgate"
    monkeypatch.setenv("AIRGATE_DATABASE_URL", "sqlite:///x.db")
    assert load_settings().database_url == "sqlite+aiosqlite:///x.db"


def test_no_repr_shows_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AIRGATE_DATABASE_URL", f"postgresql://airgate:{PASSWORD}@db/airgate")
    monkeypatch.setenv("AIRGATE_REDIS_URL", f"redis://:{PASSWORD}@cache:6379/0")
    monkeypatch.setenv("AIRGATE_QUEUE_REDIS_URL", f"redis+sentinel://:{PASSWORD}@s1,s2:26380/jobs")
    gateway_secret = "gateway-own-secret-77"
    monkeypatch.setenv("AIRGATE_USSD_GATEWAYS", f'{{"hubtel": {{"secret": "{gateway_secret}"}}}}')
    s = load_settings()
    guard = guard_for(s, "hubtel", s.ussd_gateways["hubtel"])
    sandbox = SandboxConfig(
        client_secret=s.provider_client_secret.get_secret_value(),
        sms_api_key=s.sms_api_key.get_secret_value(),
    )
    shown = " ".join(map(repr, (s, str(s), s.ussd_gateways, guard, sandbox)))
    for secret in (*SECRETS.values(), PASSWORD, gateway_secret):
        assert secret not in shown
    assert "postgresql+asyncpg://airgate:***@db/airgate" in shown
    assert "redis://:***@cache:6379/0" in shown
    assert "redis+sentinel://:***@s1,s2:26380/jobs" in shown
    # ... and each is there for the one place that uses it
    assert s.pin_pepper.get_secret_value() == SECRETS["AIRGATE_PIN_PEPPER"]
    assert s.ussd_gateways["hubtel"].secret.get_secret_value() == gateway_secret
    assert PASSWORD in s.database_url


def test_a_bad_secret_or_password_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    line = refused(monkeypatch, "AIRGATE_TELEGRAM_WEBHOOK_SECRET", "secret with spaces 123")
    assert "spaces" not in line
    monkeypatch.delenv("AIRGATE_TELEGRAM_WEBHOOK_SECRET")
    line = refused(monkeypatch, "AIRGATE_USSD_GATEWAYS", '{"hubtel": {"secret": "abcdefghij123"')
    assert "abcdefghij123" not in line
    monkeypatch.delenv("AIRGATE_USSD_GATEWAYS")
    line = refused(monkeypatch, "AIRGATE_DATABASE_URL", f"mysql://u:{PASSWORD}@db/x")
    assert PASSWORD not in line and "mysql://u:***@db/x" in line


def test_the_back_off_is_a_json_or_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRGATE_TOPUP_STATUS_BACKOFF_S", "15,30")
    assert load_settings().topup_status_backoff_s == [15, 30]
    monkeypatch.setenv("AIRGATE_TOPUP_STATUS_BACKOFF_S", "[5, 10, 20]")
    assert load_settings().topup_status_backoff_s == [5, 10, 20]
    line = refused(monkeypatch, "AIRGATE_TOPUP_STATUS_BACKOFF_S", "15,soon")
    assert "valid integer" in line
    line = refused(monkeypatch, "AIRGATE_TOPUP_STATUS_BACKOFF_S", "15,0")
    assert "greater than or equal to 1" in line
    assert "at least 1 item" in refused(monkeypatch, "AIRGATE_TOPUP_STATUS_BACKOFF_S", "")


def test_the_log_level_is_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRGATE_LOG_LEVEL", "warning")
    assert load_settings().log_level == "WARNING"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (
            '{"africastalkin": {}}',
            "unknown gateway 'africastalkin' (did you mean 'africastalking'?)",
        ),
        ('{"hubtel": {"enabld": false}}', "hubtel: unknown key 'enabld' (did you mean 'enabled'?)"),
        ('{"hubtel": {"gsm7_limit": 500}}', "hubtel.gsm7_limit: Input should be less than"),
        ('{"arkesel": {"allow_ips": ["10.0.0.300"]}}', "arkesel.allow_ips"),
        ('{"hubtel": {"deadline_s": 0}}', "hubtel.deadline_s: Input should be greater than 0"),
        ('["hubtel"]', "a JSON object"),
    ],
)
def test_gateways_name_the_wrong_part(
    monkeypatch: pytest.MonkeyPatch, value: str, words: str
) -> None:
    assert words in refused(monkeypatch, "AIRGATE_USSD_GATEWAYS", value)


def test_gateways_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRGATE_USSD_GATEWAYS", '{"hubtel": {"secret_in": "header"}}')
    assert load_settings().ussd_gateways == {"hubtel": UssdGateway(secret_in="header")}


def test_a_gateway_may_have_its_own_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRGATE_USSD_GATEWAYS", '{"hubtel": {"deadline_s": 2.5}}')
    settings = load_settings()
    assert settings.ussd_gateways["hubtel"].deadline_s == 2.5
    assert settings.hop_deadline_s == 4.0  # the other gateways'


def test_the_gateway_names_are_the_dialects() -> None:
    from ussd.dialects import DIALECTS

    assert set(USSD_GATEWAY_NAMES) == {dialect.name for dialect in DIALECTS}


def test_an_unknown_name_is_refused_with_the_closest(monkeypatch: pytest.MonkeyPatch) -> None:
    line = refused(monkeypatch, "AIRGATE_HTTP_PROT", "8080")
    assert "unknown setting (did you mean AIRGATE_HTTP_PORT?)" in line
    monkeypatch.delenv("AIRGATE_HTTP_PROT")
    line = refused(monkeypatch, "AIRGATE_PIN_PEPER", "a-pepper-long-enough-to-use")
    assert "AIRGATE_PIN_PEPPER" in line and "a-pepper" not in line


def test_the_test_prefix_and_the_sandbox_knobs_are_not_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRGATE_TEST_ANYTHING", "1")
    monkeypatch.setenv("AIRGATE_SANDBOX_LATENCY_MS", "5")
    load_settings()


def test_every_variable_the_cli_reads_is_known() -> None:
    """Typer options read some AIRGATE_* variables themselves (the sandbox's knobs): the check
    for unknown names must know them all, or a user setting one is refused."""
    from airgate.cli import app
    from core.settings import known_names

    def walk(command: Command) -> set[str]:
        names = {
            envvar
            for param in command.params
            for envvar in ([param.envvar] if isinstance(param.envvar, str) else param.envvar or [])
        }
        if isinstance(command, Group):
            for sub in command.commands.values():
                names |= walk(sub)
        return names

    assert walk(typer.main.get_command(app)) <= known_names()


def test_overrides_are_checked_too(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="AIRGATE_HTTP_PORT"):
        load_settings(http_port=0)
    assert load_settings(pin_pepper="x" * 16, var_dir=tmp_path).pin_pepper == SecretStr("x" * 16)


def test_a_sentinel_url_names_the_sentinels_the_master_and_the_db() -> None:
    from core.setting_values import sentinel_url

    read = sentinel_url(f"redis+sentinel://app:{PASSWORD}@s1:26380,[::1],s3/jobs/2")
    assert read.sentinels == (("s1", 26380), ("::1", 26379), ("s3", 26379))
    assert (read.master, read.db, read.username, read.password) == ("jobs", 2, "app", PASSWORD)
    assert PASSWORD not in repr(read)
    assert sentinel_url("redis+sentinel://s1/mymaster").db == 0
    with pytest.raises(ValueError, match="host:port"):
        sentinel_url("redis+sentinel://s1:port/mymaster")


def test_the_queue_waits_for_a_replica_on_sentinel_unless_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().queue_wait_replicas == 0
    monkeypatch.setenv("AIRGATE_QUEUE_REDIS_URL", "redis+sentinel://s1,s2,s3/mymaster")
    assert load_settings().queue_wait_replicas == 1
    monkeypatch.setenv("AIRGATE_QUEUE_REDIS_WAIT_REPLICAS", "0")
    assert load_settings().queue_wait_replicas == 0
