"""The real aiohttp app (``airgate serve``'s) over HTTP, on a seeded chain, with real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from itertools import count

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from airgate.server import build_app
from core.context import Core
from core.services.seed import seed_demo
from core.settings import Settings
from tests.redis_servers import RedisServer, private_redis

SECRET = "test-gateway-secret"
_sessions = count(1)


@pytest.fixture
def app_settings(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(update={"redis_url": redis_url, "ussd_secret": SecretStr(SECRET)})


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
def redis_server() -> Iterator[RedisServer]:
    """A Redis of the test's own, to pause or to stop (tests/redis_servers.py)."""
    with private_redis() as server:
        yield server


@pytest.fixture
async def private_client(
    app_settings: Settings, core: Core, redis_server: RedisServer
) -> AsyncIterator[TestClient]:
    """The app as ``client`` serves it, on ``redis_server``, with the demo's first retailer."""
    await seed_demo(core, retailers=1)
    on_private = app_settings.model_copy(update={"redis_url": redis_server.url})
    async with TestClient(TestServer(build_app(on_private))) as test_client:
        yield test_client


@pytest.fixture
def phone(client: TestClient) -> AtPhone:
    return AtPhone(client, "+254700000001")


from tests.fakes.telegram_api import FakeTelegram, fake_telegram  # noqa: E402, F401

HOOK_SECRET = "hook-secret_0123"


@dataclass
class Telegram:
    """The real app's webhook route in front of the real PTB Application, the fake Bot API
    behind it: a test posts updates as Telegram would and reads the chats the fake keeps."""

    client: TestClient
    fake: FakeTelegram

    async def send(self, update: dict[str, object], *, secret: str = HOOK_SECRET) -> int:
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret}
        response = await self.client.post("/telegram/webhook", json=update, headers=headers)
        return response.status

    async def say(self, user_id: int, text: str) -> None:
        update = (
            self.fake.user_command(user_id, text)
            if text.startswith("/")
            else self.fake.user_message(user_id, text)
        )
        assert await self.send(update) == 200

    async def press(self, user_id: int, label: str) -> None:
        assert await self.send(self.fake.press(user_id, label)) == 200

    def screen(self, user_id: int) -> str:
        return self.fake.last(user_id).text


@pytest.fixture
async def telegram(
    app_settings: Settings,
    core: Core,
    fake_telegram: FakeTelegram,  # noqa: F811
) -> AsyncIterator[Telegram]:
    await seed_demo(core, retailers=3)
    fake_telegram.limits = False
    settings = app_settings.model_copy(
        update={
            "telegram_token": SecretStr(fake_telegram.token),
            "telegram_api_url": fake_telegram.base_url,
            "telegram_webhook_secret": SecretStr(HOOK_SECRET),
        }
    )
    async with TestClient(TestServer(build_app(settings))) as client:
        yield Telegram(client, fake_telegram)
