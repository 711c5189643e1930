"""A Redis or database that cannot be reached on a hop: the caller hears "not available for a
moment" in their language (English when the database cannot say which), never "did not work"."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy import update

from airgate.server import build_app
from core.context import Core
from core.i18n import t
from core.models import Party
from core.services import identities
from core.services.seed import seed_demo
from core.settings import Settings
from tests.channels.conftest import HOOK_SECRET, AtPhone, Telegram
from tests.e2e.conftest import free_port
from tests.fakes.telegram_api import FakeTelegram

SHOP = "+254700000001"
USER = 5001
NOT_NOW = "error.store_unavailable"


@pytest.fixture
async def swahili_shop(core: Core) -> int:
    await seed_demo(core, retailers=1)
    async with core.transaction() as session:
        changed = await session.execute(
            update(Party).where(Party.msisdn == SHOP).values(language="sw").returning(Party.id)  # type: ignore[arg-type]
        )
        return int(changed.scalar_one())


@pytest.fixture
def redis_down(app_settings: Settings) -> Settings:
    return app_settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})


@pytest.fixture
async def client_redis_down(redis_down: Settings, swahili_shop: int) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(build_app(redis_down))) as client:
        yield client


async def test_ussd_with_redis_down_says_not_now_in_the_callers_language(
    client_redis_down: TestClient,
) -> None:
    reply = await AtPhone(client_redis_down, SHOP).dial()
    assert reply == f"END {t('sw', NOT_NOW)}"
    assert t("sw", NOT_NOW) != t("en", NOT_NOW)


async def test_ussd_with_the_database_down_says_not_now_in_english(
    app_settings: Settings,
) -> None:
    down = app_settings.model_copy(
        update={"database_url": f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none"}
    )
    async with TestClient(TestServer(build_app(down))) as client:
        reply = await AtPhone(client, SHOP).dial()
    assert reply == f"END {t('en', NOT_NOW)}"


async def test_telegram_with_redis_down_says_not_now_in_the_users_language(
    redis_down: Settings,
    core: Core,
    swahili_shop: int,
    fake_telegram: FakeTelegram,
) -> None:
    await identities.link(
        core, party_id=swahili_shop, channel="telegram", external_id=str(USER), how="test"
    )
    fake_telegram.limits = False
    settings = redis_down.model_copy(
        update={
            "telegram_token": SecretStr(fake_telegram.token),
            "telegram_api_url": fake_telegram.base_url,
            "telegram_webhook_secret": SecretStr(HOOK_SECRET),
        }
    )
    async with TestClient(TestServer(build_app(settings))) as client:
        telegram = Telegram(client, fake_telegram)
        await telegram.say(USER, "/menu")
        # Said once: the update goes no further than the handler that met the store away.
        assert [m.text for m in fake_telegram.chat(USER)] == [t("sw", NOT_NOW)]
