"""The real app (``airgate serve``'s) over HTTP with its /api/v1, on a seeded chain, real Redis,
SQLite and PostgreSQL; keys made by the same service the CLI and the bot use."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import pytest
from aiohttp.test_utils import TestClient, TestServer

from airgate.server import build_app
from core.context import Core
from core.models import Scope
from core.services import apikeys, parties
from core.services.audit import Actor
from core.services.seed import seed_demo
from core.settings import Settings

DISTRIBUTOR = "+254700000100"
RETAILER = "+254700000001"
OTHER_RETAILER = "+254700000002"
ALL_SCOPES = frozenset(Scope)


@pytest.fixture
def api_settings(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(
        update={"redis_url": redis_url, "api_rate_per_s": 1000.0, "api_burst": 1000}
    )


@dataclass
class Rig:
    client: TestClient
    core: Core

    async def key(self, party: str, scopes: Iterable[Scope] = ALL_SCOPES) -> str:
        made = await apikeys.create(self.core, actor=Actor.cli(), party_ref=party, scopes=scopes)
        return made.key

    async def party_id(self, ref: str) -> int:
        async with self.core.sessions() as session:
            party = await parties.get_party(session, ref, country="KE")
        assert party.id is not None
        return party.id


def auth(key: str, idem: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}"}
    if idem is not None:
        headers["Idempotency-Key"] = idem
    return headers


@pytest.fixture
async def rig(api_settings: Settings, core: Core) -> AsyncIterator[Rig]:
    await seed_demo(core, retailers=3)
    async with TestClient(TestServer(build_app(api_settings))) as client:
        yield Rig(client, core)
