"""The aggregator adapters by name; the setting ``provider`` (``AIRGATE_PROVIDER``) picks one.

Each entry is ``"module:Class"``, imported only when built: settings validate the name against
this table at start-up without importing any adapter (an adapter imports the settings, so an
eager import here would be a cycle), and a process pays only for the adapter it runs.

An adapter class keeps the :class:`~core.providers.port.AirtimeProvider` port, has ``name`` equal
to its key here (the catalog keys operator ids by it) and a ``from_settings(settings)``
constructor. Adding an aggregator is its module beside reloadly.py (dtone.py is the second) and
one line below
(docs/ARCHITECTURE.md, "How to add an aggregator").
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Protocol, cast

from pydantic import SecretStr

if TYPE_CHECKING:
    from core.providers.port import AirtimeProvider
    from core.setting_routing import ProviderAccount
    from core.settings import Settings

DEFAULT = "reloadly"
ADAPTERS: dict[str, str] = {
    "reloadly": "core.providers.reloadly:ReloadlyProvider",
    "dtone": "core.providers.dtone:DtOneProvider",
}
# Which of an adapter's settings an account's url, auth_url, key and secret (AIRGATE_PROVIDERS,
# core/setting_routing.py) stand in for; the single account of before is read back from them.
# An adapter not named here reads AIRGATE_PROVIDER_* (as reloadly does).
PROVIDER_FIELDS = {
    "url": "provider_url",
    "auth_url": "provider_auth_url",
    "key": "provider_client_id",
    "secret": "provider_client_secret",
}
ACCOUNT_FIELDS: dict[str, dict[str, str]] = {
    "dtone": {"url": "dtone_url", "key": "dtone_api_key", "secret": "dtone_api_secret"},
}


class AdapterClass(Protocol):
    name: str

    def from_settings(self, settings: Settings) -> AirtimeProvider: ...


def adapter_class(name: str) -> AdapterClass:
    """The adapter class registered as ``name``; KeyError if there is none."""
    module, _, attribute = ADAPTERS[name].partition(":")
    return cast(AdapterClass, getattr(importlib.import_module(module), attribute))


def build(settings: Settings, *, account: ProviderAccount | None = None) -> AirtimeProvider:
    """The adapter ``settings.provider`` names, built from the settings (``close()`` it); with an
    ``account`` (AIRGATE_PROVIDERS), that account's adapter, its URL and credentials standing in
    for the adapter's own settings (ACCOUNT_FIELDS; time-outs and pool size stay the settings')."""
    if account is not None:
        update: dict[str, object] = {"provider": account.adapter}
        for field, setting in ACCOUNT_FIELDS.get(account.adapter, PROVIDER_FIELDS).items():
            value = getattr(account, field) or account.url  # auth_url: the url when unset
            secret = isinstance(getattr(settings, setting), SecretStr)
            if isinstance(value, SecretStr) and not secret:
                value = value.get_secret_value()
            update[setting] = (
                value if not secret or isinstance(value, SecretStr) else SecretStr(value)
            )
        settings = settings.model_copy(update=update)
    return adapter_class(settings.provider).from_settings(settings)


def account_values(settings: Settings) -> dict[str, object]:
    """The single account of before (no AIRGATE_PROVIDERS): ``settings.provider``'s own settings
    as an account's url, auth_url, key and secret."""
    return {
        field: getattr(settings, setting)
        for field, setting in ACCOUNT_FIELDS.get(settings.provider, PROVIDER_FIELDS).items()
    }
