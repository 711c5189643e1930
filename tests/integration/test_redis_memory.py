"""What a live USSD session costs Redis, measured on a private ``redis-server`` (nothing else in
it): ``used_memory`` grown ÷ sessions, each a journey at its confirm step with its user's resume
point, the two keys the engine writes per user. docs/OPERATIONS.md ("Redis: timeouts, Cluster,
memory") quotes the figure this prints (748 B at 20,000 sessions, redis-server 7.0)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.conversation.flow import journeys_of
from core.conversation.flows import FLOWS, LINK_FLOW
from core.conversation.flows.topup import Order
from core.conversation.sessions import Resume, ResumePoint, Session, SessionStore
from core.redis import client
from tests.redis_servers import RedisServer, private_redis

SESSIONS = 2_000
BUDGET_B = 1_024  # per live session: a 1 GB Redis holds a million callers mid-journey


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with private_redis() as started:
        yield started


async def test_a_live_session_costs_redis_under_1_kb(server: RedisServer) -> None:
    redis = client(server.url)
    journeys = journeys_of([*FLOWS.values(), LINK_FLOW])
    store = SessionStore(redis, ttl_s={"ussd": 180}, ref_key=b"k" * 32, journeys=journeys)
    try:
        before = (await redis.info("memory"))["used_memory"]
        for i in range(SESSIONS):
            data = Order(msisdn="+254788123456", operator="airtel-ke", amount_minor=50_000)
            session = Session(
                "airtime.confirm",
                data,
                party=100_000 + i,
                role="retailer",
                journey="89abcdef",
                history=["menu", "airtime.number", "airtime.amount"],
                path="12:" + "0" * 32,
                hop=4,
            )
            point = ResumePoint("airtime.confirm", 100_000 + i, data)
            await store.save(
                "ussd", f"ATUid_{i:032x}", session, user_ref=f"+2547{i:08d}", resume=Resume(point)
            )
        per_session = ((await redis.info("memory"))["used_memory"] - before) / SESSIONS
    finally:
        await redis.aclose()
    print(f"Redis memory per live session (session + resume point): {per_session:.0f} B")
    assert per_session < BUDGET_B
