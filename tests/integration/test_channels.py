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
from core.conversation.flow import T
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
    key = engine.store.session_key("whatsapp", "w1", SHOP)
    assert 300_000 < await redis.pttl(key) <= 321_000
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


async def test_a_command_entry_opens_its_step_and_a_document_needs_a_channel_that_shows_one(
    core: Core, redis: aioredis.Redis
) -> None:
    await seed_demo(core, retailers=1)
    papers = Channel(
        name="papers",
        session_ttl_s=lambda _s: 60,
        identifies=Identifies.NUMBER,
        shows=frozenset({Shows.DOCUMENT}),
    )
    engine = conversation_engine(core, redis, (*CHANNELS, WHATSAPP, papers))
    turn = Turn("papers", "p1", SHOP, "2026-01-01 2026-01-31", is_new=True, entry=T.EXPORT)
    screen = await engine.handle(turn, Style())
    assert screen.expects == Expects.PIN and not screen.final
    assert screen.text == t("en", "statement.csv_pin", start="2026-01-01", end="2026-01-31")
    screen = await engine.handle(Turn("papers", "p1", SHOP, "1234"), Style())
    assert screen.final and screen.document is not None
    header = "date,time,kind,asset,amount,balance,reference"
    assert screen.document.content.decode().startswith(header)
    # The same command where no screen can carry a file: told how, nothing asked, nothing sent.
    turn = Turn("whatsapp", "w3", SHOP, "", is_new=True, entry=T.EXPORT)
    screen = await engine.handle(turn, Style())
    assert screen.final and screen.document is None
    assert screen.text == t("en", "statement.csv_dates")
