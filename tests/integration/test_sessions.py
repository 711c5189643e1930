"""Conversation sessions in real Redis: compare-and-set, TTL, expiry, size."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from core.conversation.flow import journeys_of
from core.conversation.flows import FLOWS, LINK_FLOW
from core.conversation.flows.topup import Order
from core.conversation.sessions import (
    Resume,
    ResumePoint,
    Session,
    SessionConflict,
    SessionStore,
)
from tests.helpers import eventually

REF_KEY = b"test-ref-key-0123456789abcdef0123"
USER = "+254700000042"
JOURNEYS = journeys_of([*FLOWS.values(), LINK_FLOW])
NUMBER = Order(msisdn="+254788123456")
# Every engine field away from its default, as on a journey's deepest step.
_ENGINE_FIELDS: dict[str, Any] = {
    "party": 123_456,
    "role": "distributor",
    "lang": "sw",
    "journey": "89abcdef",
    "history": ["menu", "sell.retailer", "sell.operator", "sell.amount"],
    "page": 2,
    "path": "43:" + "0" * 32,
    "hop": 17,
}


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_a_session_round_trips_and_versions_rise(redis: aioredis.Redis) -> None:
    store = SessionStore(redis, ttl_s={"ussd": 180}, ref_key=REF_KEY, journeys=JOURNEYS)
    assert await store.load("ussd", "s1", USER) is None
    saved = await store.save(
        "ussd", "s1", Session(state="airtime.amount", data=NUMBER), user_ref=USER
    )
    assert saved.version == 1
    loaded = await store.load("ussd", "s1", USER)
    assert loaded == Session(state="airtime.amount", data=NUMBER, version=1)
    loaded.state = "amount"
    assert (await store.save("ussd", "s1", loaded, user_ref=USER)).version == 2
    assert 170_000 < await redis.pttl(store.session_key("ussd", "s1", USER)) <= 180_000


async def test_of_two_concurrent_turns_only_one_applies(redis: aioredis.Redis) -> None:
    store = SessionStore(redis, ttl_s={"ussd": 180}, ref_key=REF_KEY, journeys=JOURNEYS)
    await store.save("ussd", "s2", Session(state="menu"), user_ref=USER)
    reads = await asyncio.gather(*(store.load("ussd", "s2", USER) for _ in range(10)))
    for i, session in enumerate(reads):
        assert session is not None
        session.data = Order(amount_minor=i + 1)
    results = await asyncio.gather(
        *(store.save("ussd", "s2", s, user_ref=USER) for s in reads if s is not None),
        return_exceptions=True,
    )
    applied = [r for r in results if isinstance(r, Session)]
    assert len(applied) == 1
    assert sum(isinstance(r, SessionConflict) for r in results) == 9
    final = await store.load("ussd", "s2", USER)
    assert final is not None and final.data == applied[0].data and final.version == 2


async def test_a_new_session_cannot_overwrite_one_another_turn_created(
    redis: aioredis.Redis,
) -> None:
    store = SessionStore(redis, ttl_s={"ussd": 180}, ref_key=REF_KEY)
    await store.save("ussd", "s3", Session(state="menu"), user_ref=USER)
    with pytest.raises(SessionConflict):
        await store.save(
            "ussd", "s3", Session(state="menu"), user_ref=USER
        )  # read as "no session" earlier


async def test_an_expired_session_reads_as_none(redis: aioredis.Redis) -> None:
    store = SessionStore(redis, ttl_s={"ussd": 1}, ref_key=REF_KEY)
    await store.save("ussd", "s4", Session(state="menu"), user_ref=USER)
    assert await store.load("ussd", "s4", USER) is not None
    assert (
        0 < await redis.pttl(store.session_key("ussd", "s4", USER)) <= 1000
    )  # the channel's TTL, set

    async def expired() -> bool:  # Redis's TTL runs out (1 s): never, if none was set
        return await store.load("ussd", "s4", USER) is None

    await eventually(expired, what="the session expiring", timeout_s=30)


async def test_a_mid_journey_session_stays_under_1_kb(redis: aioredis.Redis) -> None:
    store = SessionStore(redis, ttl_s={"ussd": 180}, ref_key=REF_KEY, journeys=JOURNEYS)
    data = Order(msisdn="+254788123456", operator="airtel-ke", amount_minor=50000, seconds_ago=119)
    session = Session("airtime.repeat", data, **_ENGINE_FIELDS)
    await store.save("ussd", "ATUid_0123456789abcdef0123456789abcdef", session, user_ref=USER)
    used = await redis.memory_usage(
        store.session_key("ussd", "ATUid_0123456789abcdef0123456789abcdef", USER)
    )
    assert used is not None and used <= 1024


async def test_a_redis_that_lost_its_scripts_still_takes_the_write(redis: aioredis.Redis) -> None:
    store = SessionStore(redis, ttl_s={"ussd": 180}, ref_key=REF_KEY)
    await store.save("ussd", "s1", Session(state="menu"), user_ref=USER)
    await redis.script_flush()  # a restarted Redis forgets loaded scripts
    saved = await store.save(
        "ussd", "s1", Session(state="airtime.number", version=1), user_ref=USER
    )
    assert saved.version == 2
    loaded = await store.load("ussd", "s1", USER)
    assert loaded is not None and loaded.state == "airtime.number"


async def test_a_resume_point_key_does_not_name_the_number(redis: aioredis.Redis) -> None:
    """Keyed by a digest under a secret: the number is not in the key, and without the key the
    digest cannot be recomputed from a guessed number."""
    store = SessionStore(redis, ttl_s={"ussd": 180}, ref_key=REF_KEY)
    await store.save(
        "ussd",
        "s9",
        Session(state="menu"),
        user_ref="+254712345678",
        resume=Resume(ResumePoint("x", 3)),
    )
    keys = [key.decode() async for key in redis.scan_iter("airgate:r:*")]
    assert keys == [store.resume_key("ussd", "+254712345678")]
    assert "712345678" not in keys[0]
    other = SessionStore(redis, ttl_s={"ussd": 180}, ref_key=b"another-key-0123456789abcdef0123")
    assert other.resume_key("ussd", "+254712345678") != keys[0]


async def test_the_engines_fields_round_trip_by_name(redis: aioredis.Redis) -> None:
    store = SessionStore(redis, ttl_s={"ussd": 180}, ref_key=REF_KEY, journeys=JOURNEYS)
    offered = ResumePoint("airtime.amount", 123_456, NUMBER)
    session = Session("resume", offered=offered, **_ENGINE_FIELDS)
    await store.save("ussd", "s1", session, user_ref=USER)
    loaded = await store.load("ussd", "s1", USER)
    assert loaded == session and loaded.version == 1
    fresh = await store.save("ussd", "s2", Session("menu"), user_ref=USER)
    raw = await redis.get(store.session_key("ussd", "s2", USER))
    assert raw == b'{"s":"menu","v":1}'  # a field at its default is not written
    assert fresh.history == [] and fresh.hop == -1


@pytest.mark.parametrize(
    "stored",
    [
        b'{"s":"menu","v":1,"p":"not a party id"}',
        b'{"v":1,"d":{}}',  # no state
        b'{"s":"menu","v":1,"h":"menu"}',
        b"not json",
        # The flow's data: a loose dict (no kind), a kind no flow declares, a field that does not
        # fit its kind; and a resume offer whose data does not fit.
        b'{"s":"airtime.amount","v":1,"d":{"n":"+254788123456"}}',
        b'{"s":"airtime.amount","v":1,"d":{"j":"gone","n":"+254788123456"}}',
        b'{"s":"airtime.confirm","v":1,"d":{"j":"top","a":"fifty"}}',
        b'{"s":"resume","v":1,"o":{"s":"airtime.amount","p":7,"d":{"n":"+254788123456"}}}',
    ],
)
async def test_a_stored_session_that_does_not_fit_reads_as_expired(
    redis: aioredis.Redis, stored: bytes
) -> None:
    """Validated on load: a session an older release wrote, or a damaged one, is never half
    applied; the engine starts over, saying the session expired."""
    store = SessionStore(redis, ttl_s={"ussd": 180}, ref_key=REF_KEY, journeys=JOURNEYS)
    await redis.set(store.session_key("ussd", "s1", USER), stored)
    assert await store.load("ussd", "s1", USER) is None


async def test_a_resume_point_that_does_not_fit_reads_as_none(redis: aioredis.Redis) -> None:
    store = SessionStore(redis, ttl_s={"ussd": 180}, ref_key=REF_KEY, journeys=JOURNEYS)
    point = ResumePoint("airtime.amount", 7, NUMBER)
    await store.save("ussd", "s1", Session("menu"), user_ref="+254712345678", resume=Resume(point))
    assert await store.resume_point("ussd", "+254712345678") == point
    key = store.resume_key("ussd", "+254712345678")
    await redis.set(key, b'{"s":"x","d":{"p":7}}')
    assert await store.resume_point("ussd", "+254712345678") is None  # an older shape: no party
    await redis.set(key, b'{"s":"airtime.amount","p":7,"d":{"n":"+254788123456"}}')
    assert await store.resume_point("ussd", "+254712345678") is None  # a loose dict of data
