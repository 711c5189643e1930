"""The circuit breaker of an (account, operator), on real Redis: shared by every client, opened by
failures in a row, half-open after its time with one probe among concurrent callers, closed by the
probe's success, re-opened by its failure; declines never count."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from core.routing.health import Breaker, Health, Result, key, read_all

OPERATOR = "safaricom-ke"
OPEN_MS = 300


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def health(redis: aioredis.Redis, *, lease_ms: int = 10_000) -> Health:
    return Health(redis=redis, failures_to_open=3, open_ms=OPEN_MS, probe_lease_ms=lease_ms)


async def fail(h: Health, account: str = "alpha", result: Result = Result.ERROR) -> Breaker | None:
    return await h.record(
        account=account, operator=OPERATOR, result=result, latency_ms=10, detail="refused"
    )


async def ok(h: Health, account: str = "alpha") -> Breaker | None:
    return await h.record(account=account, operator=OPERATOR, result=Result.OK, latency_ms=10)


async def test_failures_in_a_row_open_it_and_a_success_in_between_resets(
    redis: aioredis.Redis,
) -> None:
    h = health(redis)
    assert [await fail(h), await fail(h), await ok(h), await fail(h), await fail(h)] == [
        Breaker.CLOSED
    ] * 5
    assert await fail(h, result=Result.UNKNOWN) is Breaker.OPEN
    assert await h.admit(OPERATOR, ["alpha", "beta"]) == "beta"
    assert await h.admit(OPERATOR, ["alpha"]) is None


async def test_declines_never_open_it(redis: aioredis.Redis) -> None:
    h = health(redis)
    for _ in range(10):
        assert await fail(h, result=Result.REFUSED) is Breaker.CLOSED
    assert await h.admit(OPERATOR, ["alpha"]) == "alpha"


async def test_slow_answers_open_it(redis: aioredis.Redis) -> None:
    h = health(redis)
    states = [await fail(h, result=Result.SLOW) for _ in range(3)]
    assert states[-1] is Breaker.OPEN


async def test_half_open_lets_exactly_one_probe_then_closes_on_success(
    redis: aioredis.Redis,
) -> None:
    h, other_worker = health(redis), health(redis)  # two clients: state is Redis's, not theirs
    for _ in range(3):
        await fail(h)
    await asyncio.sleep(OPEN_MS / 1000 + 0.05)
    admitted = await asyncio.gather(*(other_worker.admit(OPERATOR, ["alpha"]) for _ in range(20)))
    assert admitted.count("alpha") == 1 and admitted.count(None) == 19
    state = await redis.hget(key("alpha", OPERATOR), "state")
    assert state == b"half_open"
    assert await ok(h) is Breaker.CLOSED
    assert await h.admit(OPERATOR, ["alpha"]) == "alpha"


async def test_a_failed_probe_opens_it_again_for_its_whole_time(redis: aioredis.Redis) -> None:
    h = health(redis)
    for _ in range(3):
        await fail(h)
    await asyncio.sleep(OPEN_MS / 1000 + 0.05)
    assert await h.admit(OPERATOR, ["alpha"]) == "alpha"  # the probe
    assert await fail(h) is Breaker.OPEN
    assert await h.admit(OPERATOR, ["alpha"]) is None
    await asyncio.sleep(OPEN_MS / 1000 + 0.05)
    assert await h.admit(OPERATOR, ["alpha"]) == "alpha"


async def test_a_probe_never_heard_of_is_given_up_after_its_lease(redis: aioredis.Redis) -> None:
    h = health(redis, lease_ms=200)
    for _ in range(3):
        await fail(h)
    await asyncio.sleep(OPEN_MS / 1000 + 0.05)
    assert await h.admit(OPERATOR, ["alpha"]) == "alpha"  # its worker dies: no record
    assert await h.admit(OPERATOR, ["alpha"]) is None
    await asyncio.sleep(0.25)
    assert await h.admit(OPERATOR, ["alpha"]) == "alpha"


async def test_each_operator_has_its_own_breaker_and_status_reads_them(
    redis: aioredis.Redis,
) -> None:
    h = health(redis)
    for _ in range(3):
        await fail(h)
    await h.record(account="alpha", operator="airtel-ke", result=Result.OK, latency_ms=40)
    assert await h.admit("airtel-ke", ["alpha"]) == "alpha"
    found = await read_all(redis)
    assert found[("alpha", OPERATOR)]["state"] == "open"
    assert found[("alpha", OPERATOR)]["error"] == "3"
    assert found[("alpha", OPERATOR)]["last_error"] == "refused"
    assert found[("alpha", "airtel-ke")]["ok"] == "1"


async def test_redis_away_admits_and_records_nothing() -> None:
    gone = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        h = health(gone)
        assert await h.admit(OPERATOR, ["alpha", "beta"]) == "alpha"
        assert await fail(h) is None
    finally:
        await gone.aclose()
