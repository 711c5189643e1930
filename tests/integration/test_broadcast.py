"""Broadcasts: the audience, the confirmation, and the sender against the fake Bot API (its flood
limits on: 30 a second overall, 1 a second per chat, 429 beyond) and the sandbox's SMS gateway.

The sender here is the worker's own (core.services.broadcast.Sender) driven in this process; the
crash test in tests/e2e/test_broadcast_crash.py kills a real ``airgate worker`` mid-broadcast.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from pydantic import SecretStr
from sqlalchemy import select, update
from sqlmodel import col

from core.context import Core, open_core
from core.db import upgrade
from core.errors import NotFound
from core.models import (
    Broadcast,
    BroadcastRecipient,
    Party,
    PartyIdentity,
    PartyTag,
    RecipientState,
    Role,
)
from core.providers.sms import AfricasTalkingSms
from core.providers.telegram import TelegramSender
from core.ratelimit import Limiter
from core.services import broadcast, identities
from core.services.audit import Actor
from core.services.broadcast import Audience, Sender
from core.services.seed import DISTRIBUTOR_MSISDN, seed_demo
from core.settings import Settings
from sandbox.app import build_app
from sandbox.config import SandboxConfig
from sandbox.store import STORE, Store
from tests.e2e.conftest import free_port
from tests.fakes.telegram_api import FakeTelegram, fake_telegram  # noqa: F401
from tests.helpers import eventually

CHAT_BASE = 50_000  # retailer i's Telegram user (and chat) id: CHAT_BASE + i


@dataclass
class Rig:
    core: Core
    redis: aioredis.Redis
    fake: FakeTelegram
    sms: Store
    distributor_id: int
    opened: list[TelegramSender | AfricasTalkingSms] = field(default_factory=list)

    def sender(self, **kwargs: object) -> Sender:
        settings = self.core.settings
        limiter = Limiter(
            self.redis,
            bot="test",
            rate=settings.telegram_rate_per_s,
            chat_interval_s=settings.telegram_chat_interval_s,
        )
        telegram = TelegramSender(
            api_url=self.fake.base_url, token=self.fake.token, limiter=limiter
        )
        sms = AfricasTalkingSms.from_settings(settings)
        self.opened += [telegram, sms]
        return Sender(core=self.core, redis=self.redis, sms=sms, telegram=telegram, **kwargs)  # type: ignore[arg-type]

    async def add_retailers(self, count: int, *, telegram_every: int = 1, first: int = 1) -> None:
        await add_retailers(
            self.core, self.distributor_id, count, telegram_every=telegram_every, first=first
        )

    async def create(self, audience: str = "all", text: str = "Safaricom stock in") -> int:
        created = await broadcast.create(
            self.core,
            distributor_id=self.distributor_id,
            text=text,
            audience=Audience.parse(audience),
            key=f"k-{audience}-{text}",
            actor=Actor.cli(),
        )
        return created.id


async def add_retailers(
    core: Core, distributor_id: int, count: int, *, telegram_every: int = 1, first: int = 1
) -> None:
    """``count`` retailers of ``distributor_id``, numbered from ``first``; retailer i is
    +2547110iiiii, and one in ``telegram_every`` is linked to Telegram user CHAT_BASE + i."""
    async with core.transaction() as session:
        for i in range(first, first + count):
            shop = Party(
                role=Role.RETAILER,
                parent_id=distributor_id,
                name=f"Shop {i}",
                msisdn=f"+2547110{i:05d}",
            )
            session.add(shop)
            if i % telegram_every == 0:
                await session.flush()
                session.add(
                    PartyIdentity(
                        channel="telegram", external_id=str(CHAT_BASE + i), party_id=shop.id or 0
                    )
                )


@pytest.fixture
async def rig(
    settings: Settings,
    redis_url: str,
    fake_telegram: FakeTelegram,  # noqa: F811
    tmp_path: Path,
) -> AsyncIterator[Rig]:
    sandbox = build_app(SandboxConfig(seed=7))
    runner = web.AppRunner(sandbox, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    settings = settings.model_copy(
        update={
            "redis_url": redis_url,
            "telegram_token": SecretStr(fake_telegram.token),
            "telegram_api_url": fake_telegram.base_url,
            "sms_url": f"http://127.0.0.1:{port}",
        }
    )
    redis = aioredis.Redis.from_url(redis_url)
    try:
        async with open_core(settings) as core:
            if core.engine.dialect.name == "sqlite":
                await upgrade(core.engine)
            await seed_demo(core, retailers=0)
            async with core.sessions() as session:
                distributor = (
                    await session.execute(select(Party).where(Party.msisdn == DISTRIBUTOR_MSISDN))
                ).scalar_one()
            assert distributor.id is not None
            rig = Rig(core, redis, fake_telegram, sandbox[STORE], distributor.id)
            try:
                yield rig
            finally:
                for client in rig.opened:
                    await client.close()
    finally:
        await redis.aclose()
        await runner.cleanup()


async def states(core: Core, broadcast_id: int) -> Counter[str]:
    async with core.sessions() as session:
        rows = await session.execute(
            select(BroadcastRecipient.state).where(BroadcastRecipient.broadcast_id == broadcast_id)
        )
        return Counter(rows.scalars().all())


async def test_audiences_count_telegram_and_sms(rig: Rig) -> None:
    await rig.add_retailers(10, telegram_every=2)
    async with rig.core.transaction() as session:
        await session.execute(
            update(Party)
            .where(Party.msisdn.in_(["+254711000001", "+254711000002"]))
            .values(  # type: ignore[attr-defined]
                region="Nairobi"
            )
        )
        shop3 = (
            await session.execute(select(Party).where(Party.msisdn == "+254711000003"))
        ).scalar_one()
        session.add(PartyTag(party_id=shop3.id, tag="nairobi"))
        shop4 = (
            await session.execute(select(Party).where(Party.msisdn == "+254711000004"))
        ).scalar_one()
        await session.execute(
            update(PartyIdentity)
            .where(PartyIdentity.party_id == shop4.id)  # type: ignore[arg-type]
            .values(blocked=True)
        )
    seen = await broadcast.preview(
        rig.core, distributor_id=rig.distributor_id, audience=Audience("all")
    )
    assert (seen.total, seen.telegram, seen.sms) == (10, 4, 6)  # shop 4 blocked the bot: SMS
    tagged = await broadcast.preview(
        rig.core, distributor_id=rig.distributor_id, audience=Audience.parse("tag:NAIROBI ")
    )
    assert (tagged.total, tagged.telegram) == (3, 1)  # two by region, one by tag
    # Nobody holds stock here (retailers=0 seeded, ours were added bare): nobody is "low" on an
    # account they do not have; a retailer must carry the operator to be low on it.
    low = await broadcast.preview(
        rig.core, distributor_id=rig.distributor_id, audience=Audience("low", "safaricom-ke")
    )
    assert low.total == 0
    with pytest.raises(NotFound):
        await rig.create("tag:nowhere")


async def test_a_retried_confirmation_makes_one_broadcast(rig: Rig) -> None:
    await rig.add_retailers(5)
    first, second = await asyncio.gather(rig.create(), rig.create())
    assert first == second
    async with rig.core.sessions() as session:
        count = len((await session.execute(select(Broadcast))).scalars().all())
    assert count == 1


async def test_every_recipient_once_within_the_limits(rig: Rig) -> None:
    await broadcast_to(rig, 100)


@pytest.mark.slow
async def test_a_thousand_recipients_once_within_the_limits(rig: Rig) -> None:
    await broadcast_to(rig, 1000)


async def broadcast_to(rig: Rig, n: int) -> None:
    """Every recipient delivered once, Telegram's limits kept, every 429 honoured, the blocked
    recorded and reached by SMS next time."""
    await rig.add_retailers(n, telegram_every=1)
    await rig.add_retailers(20, telegram_every=1000, first=n + 1)  # no Telegram: SMS
    blocked = {CHAT_BASE + i for i in (3, 77, n // 2)}
    for chat in blocked:
        rig.fake.block(chat)
    assert rig.fake.limits
    bid = await rig.create()
    assert await rig.sender().run(bid, budget_s=300)

    sent = Counter(int(c.params["chat_id"]) for c in rig.fake.calls_to("sendMessage") if c.ok)
    assert len(sent) == n - len(blocked) and max(sent.values()) == 1  # everyone, nobody twice
    assert rig.fake.max_chat_rate() <= 1 and rig.fake.max_global_rate() <= 30
    final = await broadcast.report(rig.core, bid)
    assert final.done and final.pending == 0 and final.unconfirmed == 0
    assert (final.sent, final.blocked, final.failed) == (n - 3 + 20, 3, 0)
    sms_numbers = Counter(record.number for record in rig.sms.sms)
    assert [sms_numbers[f"+2547110{i:05d}"] for i in range(n + 1, n + 21)] == [1] * 20
    # The demo distributor has no Telegram: its final report came by SMS.
    assert rig.sms.sms_by_number[DISTRIBUTOR_MSISDN][-1].message.startswith(f"Broadcast {bid}")
    assert_paced_at_the_bots_rate(rig.fake)

    # The next broadcast reaches those who blocked the bot by SMS instead.
    async with rig.core.transaction() as session:
        ids = select(PartyIdentity.party_id).where(
            col(PartyIdentity.external_id).in_([str(c) for c in blocked | {CHAT_BASE + 1}])
        )
        for party_id in (await session.execute(ids)).scalars().all():
            session.add(PartyTag(party_id=party_id, tag="again"))
    second = await rig.create("tag:again", text="Airtel stock in")
    assert await rig.sender().run(second, budget_s=60)
    async with rig.core.sessions() as session:
        rows = await session.execute(
            select(BroadcastRecipient.via).where(BroadcastRecipient.broadcast_id == second)
        )
        assert Counter(rows.scalars().all()) == Counter({"sms": 3, "telegram": 1})
    assert await states(rig.core, second) == Counter({RecipientState.SENT: 4})


def assert_paced_at_the_bots_rate(fake: FakeTelegram) -> None:
    """Not slower than the bot's rate, read from when the fake Bot API took each send (never from
    how long the test took: a busy machine stretches that, bench/bot_telegram.py measures it).
    The limiter spaces sends to different chats 1/29 s apart; a sender that paced them by the
    per-chat interval (1.05 s), or one a second, spaces them by a second or more. Half a second
    holds on a machine with a load average of 40, where a send costs this process ~0.1 s."""
    times = sorted(c.at for c in fake.calls_to("sendMessage") if c.ok)
    gaps = sorted(later - earlier for earlier, later in zip(times, times[1:], strict=False))
    median = gaps[len(gaps) // 2]
    assert median < 0.5, f"sends {median:.3f} s apart (median of {len(gaps)} gaps)"


async def test_429_pauses_every_sender_and_nobody_is_skipped(rig: Rig) -> None:
    """The fake allows a tenth of our rate: many 429s, each honoured, nothing lost or doubled."""
    rig.fake.global_per_s = 3
    await rig.add_retailers(12)
    bid = await rig.create()
    assert await rig.sender().run(bid, budget_s=120)
    assert rig.fake.rate_limited > 0
    sent = Counter(c.params["chat_id"] for c in rig.fake.calls_to("sendMessage") if c.ok)
    assert len(sent) == 12 and max(sent.values()) == 1
    assert (await states(rig.core, bid)) == Counter({RecipientState.SENT: 12})
    assert rig.fake.max_global_rate() <= 3


async def test_a_part_hands_over_and_a_takeover_never_resends(rig: Rig) -> None:
    await rig.add_retailers(40)
    bid = await rig.create()
    assert not await rig.sender().run(bid, budget_s=0.5)  # more to send: the next part's
    # A sender died with a row claimed: the next marks it unconfirmed and does not send it.
    async with rig.core.transaction() as session:
        claimed = (
            await session.execute(
                select(BroadcastRecipient)
                .where(
                    BroadcastRecipient.broadcast_id == bid,
                    BroadcastRecipient.state == RecipientState.PENDING,
                )
                .limit(1)
            )
        ).scalar_one()
        claimed.state = RecipientState.SENDING
        chat = claimed.recipient
    # Its lease is held: nobody else may send meanwhile.
    await rig.redis.set(f"{broadcast.LEASE_PREFIX}{bid}", "dead", px=300)
    assert await rig.sender().run(bid, budget_s=60)  # busy: "someone else is on it"
    assert not (await broadcast.report(rig.core, bid)).done

    async def lapsed() -> bool:  # the dead sender's lease, gone from Redis
        return not await rig.redis.exists(f"{broadcast.LEASE_PREFIX}{bid}")

    await eventually(lapsed, what="the dead sender's lease lapsing")
    assert await rig.sender().run(bid, budget_s=60)
    final = await broadcast.report(rig.core, bid)
    assert final.done and (final.sent, final.unconfirmed) == (39, 1)
    sent = Counter(c.params["chat_id"] for c in rig.fake.calls_to("sendMessage") if c.ok)
    assert chat not in {str(c) for c in sent} and max(sent.values()) == 1


async def test_progress_is_edited_into_the_distributors_chat(rig: Rig) -> None:
    await identities.link(
        rig.core, party_id=rig.distributor_id, channel="telegram", external_id="4242", how="test"
    )
    await rig.add_retailers(8)
    bid = await rig.create()
    assert await rig.sender().run(bid, budget_s=60)
    report = rig.fake.last(4242)
    assert report.text is not None and report.text.startswith(f"Broadcast {bid} done: 8 of 8")
    assert len(rig.fake.chat(4242)) == 1  # one message, edited in place


async def test_with_the_bot_turned_off_every_recipient_gets_an_sms(rig: Rig) -> None:
    await rig.add_retailers(5)  # all linked to Telegram when the broadcast was confirmed
    bid = await rig.create()
    sms = AfricasTalkingSms.from_settings(rig.core.settings)
    rig.opened.append(sms)
    sender = Sender(core=rig.core, redis=rig.redis, sms=sms, telegram=None)
    assert await sender.run(bid, budget_s=30)
    numbers = Counter(record.number for record in rig.sms.sms)
    assert all(numbers[f"+2547110{i:05d}"] == 1 for i in range(1, 6))
    assert rig.fake.calls_to("sendMessage") == []
    assert await states(rig.core, bid) == Counter({RecipientState.SENT: 5})
