"""A channel the core has never heard of: declared once, composed into the engine, and served
(real Redis, real SQLite and PostgreSQL); nothing in the core names it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from airgate.server import CHANNELS, conversation_engine
from core.context import Core
from core.conversation.channel import Channel, Identifies, Shows
from core.conversation.engine import Style
from core.conversation.sessions import session_key
from core.conversation.types import Expects, Turn
from core.i18n import t
from core.services.seed import seed_demo

SHOP = "+254700000001"
WHATSAPP = Channel(name="whatsapp", session_ttl_s=lambda _s: 321, identifies=Identifies.NUMBER)
# A channel of accounts whose screens cannot ask for a contact: linking is by invite only.
KIOSK = Channel(name="kiosk", session_ttl_s=lambda _s: 60, identifies=Identifies.ACCOUNT)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_a_declared_third_channel_is_served_with_its_own_session_ttl(
    core: Core, redis: aioredis.Redis
) -> None:
    await seed_demo(core, retailers=1)
    engine = conversation_engine(core, redis, (*CHANNELS, WHATSAPP))
    screen = await engine.handle(Turn("whatsapp", "w1", SHOP, "", is_new=True), Style())
    assert not screen.final and screen.options[0].label == t("en", "menu.airtime")
    assert 300_000 < await redis.pttl(session_key("whatsapp", "w1")) <= 321_000
    screen = await engine.handle(Turn("whatsapp", "w1", SHOP, "3"), Style())  # balance
    assert screen.expects == Expects.PIN


async def test_a_number_nobody_registered_is_told_so_on_any_channel_of_numbers(
    core: Core, redis: aioredis.Redis
) -> None:
    engine = conversation_engine(core, redis, (*CHANNELS, WHATSAPP))
    turn = Turn("whatsapp", "w2", "+254799999999", "", is_new=True)
    screen = await engine.handle(turn, Style())
    assert screen.final and screen.text == t("en", "start.unregistered")


async def test_an_unlinked_account_where_no_contact_can_be_asked_is_told_how_to_link(
    core: Core, redis: aioredis.Redis
) -> None:
    assert not KIOSK.can(Shows.CONTACT)
    engine = conversation_engine(core, redis, (*CHANNELS, KIOSK))
    screen = await engine.handle(Turn("kiosk", "k1", "42", "", is_new=True), Style())
    assert screen.final and screen.text == t("en", "start.unlinked")


async def test_a_channel_declared_twice_is_refused(core: Core, redis: aioredis.Redis) -> None:
    with pytest.raises(ValueError, match="declared twice"):
        conversation_engine(core, redis, (*CHANNELS, WHATSAPP, WHATSAPP))
