"""Redialling after a dropped journey, over HTTP: every menu item of both roles, in every language,
offers to continue (or shows the menu) and never answers "Sorry, that did not work"."""

from __future__ import annotations

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from core.context import Core
from core.conversation.flows.menus import DISTRIBUTOR_MENU, RETAILER_MENU
from core.conversation.sessions import REF_KEY_PURPOSE, SessionStore
from core.i18n import LANGUAGES, t
from core.services import parties
from core.services.audit import Actor
from core.services.seed import DISTRIBUTOR_MSISDN
from tests.channels.conftest import AtPhone

RETAILER = "+254700000001"
ROLES = [(RETAILER, len(RETAILER_MENU)), (DISTRIBUTOR_MSISDN, len(DISTRIBUTOR_MENU))]


@pytest.mark.parametrize("language", LANGUAGES)
async def test_every_menu_item_of_both_roles_resumes_in_every_language(
    client: TestClient, core: Core, language: str
) -> None:
    sorry = t(language, "error.unexpected")
    for msisdn, items in ROLES:
        party = await parties.identify(core, user_ref=msisdn)
        assert party is not None
        await parties.set_language(core, actor=Actor.cli(), party_id=party.id, language=language)
        for item in range(1, items + 1):
            phone = AtPhone(client, msisdn)
            if offered(await phone.dial(), language):  # the previous item's point
                await phone.send("2")
            await phone.send(str(item))  # then the line drops
            again = phone.redial()
            first = await again.dial()
            assert first.startswith("CON"), (msisdn, item, first)
            assert sorry not in first and "menu." not in first, (msisdn, item, first)
            if offered(first, language):
                resumed = await again.send("1")
                assert sorry not in resumed, (msisdn, item, resumed)


def resume_key(core: Core, redis: aioredis.Redis, msisdn: str) -> str:
    """The key the app keeps ``msisdn``'s resume point under (a keyed digest, not the number)."""
    store = SessionStore(redis, ttl_s={}, ref_key=core.pins.subkey(REF_KEY_PURPOSE))
    return store.resume_key("ussd", msisdn)


def offered(screen: str, language: str) -> bool:
    return screen.endswith(f"1. {t(language, 'start.continue')}\n2. {t(language, 'start.over')}")


async def test_a_resume_point_that_cannot_be_shown_is_dropped(
    phone: AtPhone, core: Core, redis_url: str
) -> None:
    """A point left by an older release (a state no flow has now) gives the menu, and is gone."""
    party = await parties.identify(core, user_ref=phone.msisdn)
    assert party is not None
    redis = aioredis.Redis.from_url(redis_url)
    key = resume_key(core, redis, phone.msisdn)
    try:
        await redis.set(key, orjson.dumps({"s": "gone.step", "p": party.id}), px=120_000)
        assert (await phone.dial()).startswith("CON AirGate\n1. Airtime top-up")
        assert await redis.get(key) is None
        assert (await phone.redial().dial()).startswith("CON AirGate\n1. Airtime top-up")
    finally:
        await redis.aclose()


async def test_continuing_a_point_whose_step_cannot_be_shown_gives_the_menu(
    phone: AtPhone, core: Core, redis_url: str
) -> None:
    """The offer could be shown (its label exists) but the step's data is not what it needs."""
    party = await parties.identify(core, user_ref=phone.msisdn)
    assert party is not None
    redis = aioredis.Redis.from_url(redis_url)
    key = resume_key(core, redis, phone.msisdn)
    point = {"s": "airtime.confirm", "p": party.id}  # no number, no amount
    try:
        await redis.set(key, orjson.dumps(point), px=120_000)
        assert (await phone.dial()).startswith("CON Continue where you left off (Airtime")
        assert (await phone.send("1")).startswith("CON AirGate\n1. Airtime top-up")
        assert await redis.get(key) is None
    finally:
        await redis.aclose()
