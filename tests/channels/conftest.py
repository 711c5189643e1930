"""The real aiohttp app (``airgate serve``'s) over HTTP, on a seeded chain, with real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from itertools import count

import pytest
from aiohttp.test_utils import TestClient, TestServer

from airgate.server import build_app
from core.context import Core
from core.services.seed import seed_demo
from core.settings import Settings

SECRET = "test-gateway-secret"
_sessions = count(1)


@pytest.fixture
def app_settings(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(update={"redis_url": redis_url, "ussd_secret": SECRET})


@pytest.fixture
async def client(app_settings: Settings, core: Core) -> AsyncIterator[TestClient]:
    await seed_demo(core, retailers=3)
    async with TestClient(TestServer(build_app(app_settings))) as test_client:
        yield test_client


@dataclass
class AtPhone:
    """A handset on Africa's Talking: each hop sends the whole path of the session's inputs."""

    client: TestClient
    msisdn: str
    session_id: str = field(default_factory=lambda: f"ATUid_{next(_sessions)}")
    inputs: list[str] = field(default_factory=list)

    async def dial(self) -> str:
        """A new session, as every dial is for the gateway."""
        self.session_id = f"ATUid_{next(_sessions)}"
        self.inputs = []
        return await self._post("")

    async def send(self, text: str) -> str:
        self.inputs.append(text)
        return await self._post("*".join(self.inputs))

    def redial(self) -> AtPhone:
        return AtPhone(self.client, self.msisdn)

    async def _post(self, path: str) -> str:
        form = {"sessionId": self.session_id, "phoneNumber": self.msisdn, "text": path}
        form |= {"serviceCode": "*384*123#", "networkCode": "63902"}
        response = await self.client.post(f"/ussd/africastalking?token={SECRET}", data=form)
        assert response.status == 200, await response.text()
        return await response.text()


@pytest.fixture
def phone(client: TestClient) -> AtPhone:
    return AtPhone(client, "+254700000001")
