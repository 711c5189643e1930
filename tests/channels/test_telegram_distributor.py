"""A distributor in the bot: sells stock to a retailer with buttons and the PIN; broadcasts
(compose, audience, preview with the count, PIN; the worker's sender then delivers it and edits
the progress into the distributor's chat)."""

from __future__ import annotations

import redis.asyncio as aioredis
from sqlalchemy import select, update

from core.context import Core
from core.models import Broadcast, Party, PartyIdentity, Role
from core.providers.sms import AfricasTalkingSms
from core.providers.telegram import TelegramSender
from core.services import broadcast, identities, links, parties, stock
from core.services.audit import Actor
from core.services.seed import DEMO_PIN, DISTRIBUTOR_MSISDN
from tests.channels.conftest import Telegram

BOSS = 7001  # the distributor's Telegram user
SHOPS = {"+254700000001": 7101, "+254700000002": 7102, "+254700000003": 7103}


async def _boss(telegram: Telegram, core: Core, redis: aioredis.Redis) -> None:
    code = await links.invite(
        core, redis, actor=Actor.system(), party_ref=DISTRIBUTOR_MSISDN, ttl_s=600
    )
    await telegram.say(BOSS, f"/start {code.code}")


async def test_a_distributor_sells_stock_with_buttons_and_pin(
    telegram: Telegram, core: Core, redis_url: str
) -> None:
    redis = aioredis.Redis.from_url(redis_url)
    await _boss(telegram, core, redis)
    await redis.aclose()
    before = await stock.balance(core, ref="+254700000001")
    await telegram.press(BOSS, "Sell stock")
    await telegram.say(BOSS, "0700000001")
    assert telegram.screen(BOSS).startswith("Which operator's stock to sell to Demo Shop 001?")
    await telegram.press(BOSS, "Safaricom")
    await telegram.say(BOSS, "1,000")
    assert telegram.screen(BOSS).startswith("Sell KES 1,000 Safaricom to Demo Shop 001")
    await telegram.say(BOSS, DEMO_PIN)
    assert telegram.screen(BOSS).startswith("Sold KES 1,000 Safaricom to Demo Shop 001 for")
    after = await stock.balance(core, ref="+254700000001")
    gained = after.stock["safaricom-ke"]["available"] - before.stock["safaricom-ke"]["available"]
    assert gained == 100_000
    # The PIN did not stay in the chat.
    assert all(m.text != DEMO_PIN for m in telegram.fake.chat(BOSS, include_user=True))


async def test_a_distributor_broadcasts_to_its_retailers(
    telegram: Telegram, core: Core, redis_url: str
) -> None:
    redis = aioredis.Redis.from_url(redis_url)
    await _boss(telegram, core, redis)
    async with core.transaction() as session:
        for msisdn, user in SHOPS.items():
            session.add(
                PartyIdentity(
                    channel="telegram",
                    external_id=str(user),
                    party_id=(await parties.get_party(session, msisdn, country="KE")).id or 0,
                )
            )
        await session.execute(  # a retailer of another distributor is not in the audience
            update(Party)
            .where(Party.role == Role.RETAILER, Party.msisdn.notin_(list(SHOPS)))  # type: ignore[attr-defined]
            .values(parent_id=None)
        )

    await telegram.press(BOSS, "Broadcast")
    assert telegram.screen(BOSS).startswith("Type your message to your retailers")
    await telegram.say(BOSS, "  New Safaricom stock in,\n call me  ")
    await telegram.press(BOSS, "All my retailers")
    preview = telegram.screen(BOSS)
    assert preview.startswith('Send to 3 retailers (3 Telegram, 0 SMS): "New Safaricom stock in')
    await telegram.say(BOSS, DEMO_PIN)
    assert telegram.screen(BOSS).startswith("Broadcast 1 to 3 retailers is on its way.")
    async with core.sessions() as session:
        row = (await session.execute(select(Broadcast))).scalar_one()
    assert (row.text, row.audience, row.progress_chat_id) == (
        "New Safaricom stock in, call me",
        "all",
        BOSS,
    )

    fake = telegram.fake
    sender = TelegramSender(api_url=fake.base_url, token=fake.token)
    sms = AfricasTalkingSms.from_settings(core.settings)
    try:
        done = await broadcast.Sender(core=core, redis=redis, sms=sms, telegram=sender).run(
            row.id or 0, budget_s=30
        )
    finally:
        await sender.close()
        await sms.close()
        await redis.aclose()
    assert done
    for user in SHOPS.values():
        assert fake.last(user).text == "Demo Distributor: New Safaricom stock in, call me"
    report = fake.last(BOSS).text
    assert report.startswith("Broadcast 1 done: 3 of 3 delivered, 0 failed, 0 blocked the bot")


async def test_restarting_the_bot_after_blocking_it_brings_messages_back_to_telegram(
    telegram: Telegram, core: Core
) -> None:
    async with core.sessions() as session:
        party = (
            await session.execute(select(Party).where(Party.msisdn == "+254700000001"))
        ).scalar_one()
    assert party.id is not None
    await identities.link(core, party_id=party.id, channel="telegram", external_id="7101", how="t")
    await identities.mark_blocked(core, channel="telegram", party_ids=[party.id])
    async with core.sessions() as session:
        assert await identities.address(session, party_id=party.id, channel="telegram") is None
    await telegram.say(7101, "/start")  # what Telegram's "Restart bot" sends
    async with core.sessions() as session:
        assert await identities.address(session, party_id=party.id, channel="telegram") == "7101"
