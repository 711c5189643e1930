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

if TYPE_CHECKING:
    from core.providers.port import AirtimeProvider
    from core.settings import Settings

DEFAULT = "reloadly"
ADAPTERS: dict[str, str] = {
    "reloadly": "core.providers.reloadly:ReloadlyProvider",
    "dtone": "core.providers.dtone:DtOneProvider",
}


class AdapterClass(Protocol):
    name: str

    def from_settings(self, settings: Settings) -> AirtimeProvider: ...


def adapter_class(name: str) -> AdapterClass:
    """The adapter class registered as ``name``; KeyError if there is none."""
    module, _, attribute = ADAPTERS[name].partition(":")
    return cast(AdapterClass, getattr(importlib.import_module(module), attribute))


def build(settings: Settings) -> AirtimeProvider:
    """The adapter ``settings.provider`` names, built from the settings (``close()`` it)."""
    return adapter_class(settings.provider).from_settings(settings)
