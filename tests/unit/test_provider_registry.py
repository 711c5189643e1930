"""The worker's aggregator is the adapter the setting names: a registry entry, not a class."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from core.errors import SettingsError
from core.providers import registry
from core.providers.port import (
    AirtimeProvider,
    Outcome,
    ProviderBalance,
    ProviderOperator,
    ProviderTransaction,
    TopupOrder,
)
from core.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.upper().startswith("AIRGATE_"):
            monkeypatch.delenv(name)


class Echo:
    """A second aggregator as issue 15 would add one: a module's class and a registry line."""

    name = "echo"

    def __init__(self, url: str) -> None:
        self.url = url

    @classmethod
    def from_settings(cls, settings: Settings) -> Echo:
        return cls(settings.provider_url)

    async def detect_operator(self, *, msisdn: str, country: str) -> ProviderOperator:
        raise NotImplementedError

    async def operators(self, *, country: str) -> list[ProviderOperator]:
        return []

    async def send_topup(self, order: TopupOrder) -> ProviderTransaction:
        return ProviderTransaction(
            reference=order.reference,
            outcome=Outcome.DELIVERED,
            provider_ref=None,
            operator_ref=None,
            delivered_minor=order.amount_minor,
            currency=order.currency,
            at=datetime.now(),
        )

    async def find(self, *, reference: str, since: datetime) -> ProviderTransaction | None:
        return None

    async def balance(self) -> ProviderBalance:
        return ProviderBalance(balance_minor=0, currency="KES")

    async def transactions(
        self, *, start: datetime, end: datetime
    ) -> AsyncIterator[ProviderTransaction]:
        return
        yield

    async def close(self) -> None:
        return None


@pytest.mark.parametrize("name", sorted(registry.ADAPTERS))
def test_every_entry_is_an_adapter_named_as_its_key(name: str) -> None:
    adapter = registry.adapter_class(name)
    assert adapter.name == name and callable(adapter.from_settings)


async def test_the_default_is_reloadly() -> None:
    provider = registry.build(load_settings())
    try:
        assert (registry.DEFAULT, provider.name) == ("reloadly", "reloadly")
    finally:
        await provider.close()


async def test_the_setting_picks_a_registered_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.ADAPTERS, "echo", f"{__name__}:Echo")
    monkeypatch.setenv("AIRGATE_PROVIDER", "echo")
    monkeypatch.setenv("AIRGATE_PROVIDER_URL", "https://echo.example")
    provider: AirtimeProvider = registry.build(load_settings())
    assert isinstance(provider, Echo) and provider.url == "https://echo.example"


def test_an_unregistered_name_is_refused_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRGATE_PROVIDER", "ding")
    with pytest.raises(SettingsError, match="unknown aggregator 'ding'.*one of reloadly"):
        load_settings()
