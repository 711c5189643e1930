"""A distributor's API keys in the bot: made after the PIN and sent once as a file (never as a
message's text, never into Redis), usable at once on /api/v1, listed by prefix, revoked after the
PIN; the item is not on USSD's menu."""

from __future__ import annotations

import redis.asyncio as aioredis

from core.context import Core
from core.services import links
from core.services.audit import Actor
from core.services.seed import DEMO_PIN, DISTRIBUTOR_MSISDN
from tests.channels.conftest import AtPhone, Telegram
from tests.channels.test_no_leaks import dump_redis

BOSS = 7001


async def test_a_distributor_makes_uses_and_revokes_a_key(
    telegram: Telegram, core: Core, redis_url: str
) -> None:
    redis = aioredis.Redis.from_url(redis_url)
    code = await links.invite(
        core, redis, actor=Actor.system(), party_ref=DISTRIBUTOR_MSISDN, ttl_s=600
    )
    await redis.aclose()
    await telegram.say(BOSS, f"/start {code.code}")
    await telegram.press(BOSS, "API keys")
    assert telegram.screen(BOSS).startswith("Your API keys:\nYou have no API keys.")
    await telegram.press(BOSS, "New key")
    await telegram.press(BOSS, "Read only")
    assert "scopes read?" in telegram.screen(BOSS)
    await telegram.say(BOSS, DEMO_PIN)
    document = telegram.fake.documents[-1]
    key = document.content.decode().strip()
    assert key.startswith("agk_") and len(key) == 47
    assert document.filename == f"airgate-api-key-{key[:12]}.txt"
    assert all(key not in (m.text or "") for m in telegram.fake.chat(BOSS, include_user=True))
    names, stored = await dump_redis(redis_url)
    assert key not in stored and key[12:] not in stored
    answer = await telegram.client.get(
        "/api/v1/sales/today", headers={"Authorization": f"Bearer {key}"}
    )
    assert answer.status == 200, await answer.text()
    await telegram.say(BOSS, "/menu")
    await telegram.press(BOSS, "API keys")
    assert f"{key[:12]}... read" in telegram.screen(BOSS)
    await telegram.press(BOSS, "Revoke a key")
    await telegram.press(BOSS, f"{key[:12]}... read")
    await telegram.say(BOSS, DEMO_PIN)
    assert telegram.screen(BOSS) == f"Key {key[:12]}... revoked."
    answer = await telegram.client.get(
        "/api/v1/sales/today", headers={"Authorization": f"Bearer {key}"}
    )
    assert answer.status == 401


async def test_the_item_is_not_on_the_ussd_menu(client: object) -> None:
    from aiohttp.test_utils import TestClient

    assert isinstance(client, TestClient)
    phone = AtPhone(client, DISTRIBUTOR_MSISDN)
    menu = await phone.dial()
    assert "10 Support cases" in menu or "10." in menu
    assert "API" not in menu
    assert "API" not in await phone.send("98")
