"""AIRGATE_PROVIDERS and AIRGATE_ROUTES: the accounts and routes, each mistake one clear line, the
single account of before as the default, no secret in any repr or error line."""

from __future__ import annotations

import json
import os

import pytest

from core.errors import SettingsError
from core.settings import load_settings

SECRET = "account-secret-5a6b7c"
ALPHA = {"name": "alpha", "url": "http://127.0.0.1:9001", "key": "k1", "secret": SECRET}
BETA = {"name": "beta", "url": "http://127.0.0.1:9002", "key": "k2", "secret": "s2"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.upper().startswith("AIRGATE_"):
            monkeypatch.delenv(name)


def refused(monkeypatch: pytest.MonkeyPatch, **env: object) -> str:
    for name, value in env.items():
        monkeypatch.setenv(f"AIRGATE_{name.upper()}", json.dumps(value))
    with pytest.raises(SettingsError) as info:
        load_settings()
    line = str(info.value)
    assert "\n" not in line and SECRET not in line, line
    return line


def test_without_providers_the_one_account_of_before() -> None:
    [account] = load_settings(provider_url="http://agg:1", provider_client_id="me").accounts()
    assert (account.name, account.adapter, account.url) == ("reloadly", "reloadly", "http://agg:1")
    assert (account.key.get_secret_value(), account.secret.get_secret_value()) == ("me", "sandbox")
    assert (account.price_bps, account.low_float_minor) == (10_000, 0)


def test_a_list_or_an_object_of_accounts_in_declared_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRGATE_PROVIDERS", json.dumps([BETA, {**ALPHA, "price_bps": 9_700}]))
    settings = load_settings()
    assert [a.name for a in settings.accounts()] == ["beta", "alpha"]
    assert settings.providers["alpha"].price_bps == 9_700
    by_name = {"alpha": {k: v for k, v in ALPHA.items() if k != "name"}, "beta": BETA}
    monkeypatch.setenv("AIRGATE_PROVIDERS", json.dumps(by_name))
    assert [a.name for a in load_settings().accounts()] == ["alpha", "beta"]
    assert SECRET not in repr(load_settings()) and SECRET not in str(load_settings())


def test_routes_name_declared_accounts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRGATE_PROVIDERS", json.dumps([ALPHA, BETA]))
    monkeypatch.setenv("AIRGATE_ROUTES", '{"safaricom-ke": ["beta", "alpha"], "*": ["alpha"]}')
    assert load_settings().routes == {"safaricom-ke": ["beta", "alpha"], "*": ["alpha"]}
    line = refused(monkeypatch, routes={"*": ["alpha", "betta"]})
    assert line == (
        "invalid setting AIRGATE_ROUTES: the route of '*' names 'betta' (did you mean 'beta'?), "
        "not an account; the accounts are alpha, beta"
    )


def test_a_route_may_name_the_default_account(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRGATE_ROUTES", '{"*": ["reloadly"]}')
    assert load_settings().routes == {"*": ["reloadly"]}
    assert "the accounts are reloadly" in refused(monkeypatch, routes={"*": ["alpha"]})


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ([ALPHA, ALPHA], "account 'alpha' is declared twice"),
        ([{**ALPHA, "pric_bps": 1}], "unknown key 'pric_bps' (did you mean 'price_bps'?)"),
        ([{**ALPHA, "adapter": "dtwo"}], "unknown adapter 'dtwo'"),
        ([{**ALPHA, "url": "agg:1"}], "http:// or https://"),
        ([{**ALPHA, "secret": ""}], "must not be empty"),
        ([{**ALPHA, "price_bps": 0}], "greater than or equal to 1"),
        ([{k: v for k, v in ALPHA.items() if k != "name"}], 'each account needs a "name"'),
        ({"alpha": {**ALPHA, "name": "beta"}}, "account 'alpha' is named 'beta' inside"),
        ("alpha", "a JSON list"),
    ],
)
def test_a_bad_account_is_one_line(
    monkeypatch: pytest.MonkeyPatch, value: object, words: str
) -> None:
    line = refused(monkeypatch, providers=value)
    assert line.startswith("invalid setting AIRGATE_PROVIDERS: ") and words in line, line


def test_a_route_naming_an_account_twice_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRGATE_PROVIDERS", json.dumps([ALPHA, BETA]))
    assert "names an account twice" in refused(monkeypatch, routes={"*": ["alpha", "alpha"]})


def test_without_providers_a_dt_one_setup_is_its_one_account() -> None:
    settings = load_settings(provider="dtone", dtone_url="http://dt:1/v1", dtone_api_key="key-1")
    [account] = settings.accounts()
    assert (account.name, account.adapter, account.url) == ("dtone", "dtone", "http://dt:1/v1")
    assert account.key.get_secret_value() == "key-1"


def test_each_account_builds_its_own_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.providers import registry

    dt = {"name": "dt", "adapter": "dtone", "url": "http://dt:1/v1", "key": "k", "secret": SECRET}
    monkeypatch.setenv("AIRGATE_PROVIDERS", json.dumps([ALPHA, dt]))
    settings = load_settings()
    built = [registry.build(settings, account=a) for a in settings.accounts()]
    assert [type(p).__name__ for p in built] == ["ReloadlyProvider", "DtOneProvider"]
    assert [p.name for p in built] == ["reloadly", "dtone"]
    assert SECRET not in repr(built) and SECRET not in repr(settings.accounts())
