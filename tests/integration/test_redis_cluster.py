"""AirGate on a Redis Cluster (AIRGATE_REDIS_URL=redis+cluster://...): sessions and resume points,
the API's rate limit and idempotency, the bot's send rate, routing breakers, invite codes, and a
whole USSD journey over HTTP, with the job queue on a plain Redis (AIRGATE_QUEUE_REDIS_URL).

The cluster is three masters made by ``redis-server`` and ``redis-cli --cluster create`` on free
ports (tests/redis_servers.py), once per test session. A key set that does not share a hash slot
fails here as it would in production: redis-py refuses a script whose keys span slots, and the
server refuses one whose keys live on another node."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from redis.asyncio.cluster import RedisCluster
from sqlalchemy import select

from airgate.ops import REDIS
from airgate.server import ENGINE, build_app
from api.idempotency import Idempotency, Stored, redis_key
from api.ratelimit import RateLimiter
from core.context import Core
from core.conversation.flow import journeys_of
from core.conversation.flows import FLOWS, LINK_FLOW
from core.conversation.sessions import Resume, ResumePoint, Session, SessionConflict, SessionStore
from core.i18n import t
from core.jobs.queue import QUEUE
from core.models import Topup, TopupState
from core.ratelimit import Limiter
from core.redis import Client, client
from core.redis_pipeline import hot_client
from core.routing.health import Health, Result, read_all
from core.services import links
from core.services.seed import seed_demo
from core.settings import Settings
from core.worker import build_worker, run_worker
from tests.channels.conftest import SECRET, AtPhone
from tests.helpers import eventually
from tests.lifecycle.conftest import FAST, SANDBOX, sandbox_serving
from tests.redis_servers import RedisServer, redis_cluster

REF_KEY = b"test-ref-key-0123456789abcdef0123"
USER = "+254700000042"
PIN = "1234"


@pytest.fixture(scope="session")
def cluster_nodes() -> Iterator[list[RedisServer]]:
    with redis_cluster(3) as servers:
        yield servers


@pytest.fixture
def cluster_url(cluster_nodes: list[RedisServer]) -> str:
    return "redis+cluster://" + ",".join(f"127.0.0.1:{s.port}" for s in cluster_nodes[:2]) + "/"


@pytest.fixture
async def cluster(cluster_url: str) -> AsyncIterator[Client]:
    redis = client(cluster_url)
    assert isinstance(redis, RedisCluster)
    await redis.flushall(target_nodes=RedisCluster.PRIMARIES)
    yield redis
    await redis.aclose()


def _store(redis: Client, ttl_s: int = 180) -> SessionStore:
    journeys = journeys_of([*FLOWS.values(), LINK_FLOW])
    return SessionStore(redis, ttl_s={"ussd": ttl_s}, ref_key=REF_KEY, journeys=journeys)


async def _spread(redis: Client, pattern: str) -> set[str]:
    """The nodes (host:port) holding keys matching ``pattern``."""
    assert isinstance(redis, RedisCluster)
    nodes: set[str] = set()
    for node in redis.get_primaries():
        if await redis.keys(pattern, target_nodes=node):
            nodes.add(node.name)
    return nodes


async def test_sessions_and_resume_points_on_a_cluster(cluster: Client) -> None:
    store = _store(cluster)
    point = ResumePoint("airtime.amount", 7)
    users = [f"+2547000001{i:02d}" for i in range(12)]
    for n, user in enumerate(users):
        saved = await store.save(
            "ussd", f"s{n}", Session(state="menu"), user_ref=user, resume=Resume(point)
        )
        assert saved.version == 1
    assert len(await _spread(cluster, "airgate:s:*")) >= 2  # users' keys spread over the nodes
    for n, user in enumerate(users):
        loaded = await store.load("ussd", f"s{n}", user)
        assert loaded is not None and loaded.version == 1
        assert await store.resume_point("ussd", user) == point
        with pytest.raises(SessionConflict):  # compare-and-set holds on a cluster too
            await store.save("ussd", f"s{n}", Session(state="menu"), user_ref=user)
    # Of concurrent turns read at one version, one applies.
    reads = await asyncio.gather(*(store.load("ussd", "s0", users[0]) for _ in range(8)))
    results = await asyncio.gather(
        *(store.save("ussd", "s0", s, user_ref=users[0]) for s in reads if s is not None),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Session) for r in results) == 1
    await cluster.execute_command("SCRIPT FLUSH", target_nodes=RedisCluster.PRIMARIES)
    again = await store.load("ussd", "s0", users[0])
    assert again is not None
    await store.save("ussd", "s0", again, user_ref=users[0], resume=Resume(None))
    assert await store.resume_point("ussd", users[0]) is None


async def test_keys_on_a_cluster_name_no_number(cluster: Client) -> None:
    store = _store(cluster)
    await store.save(
        "ussd", "s1", Session(state="menu"), user_ref=USER, resume=Resume(ResumePoint("x", 3))
    )
    assert isinstance(cluster, RedisCluster)
    keys = [k.decode() for k in await cluster.keys("*", target_nodes=RedisCluster.PRIMARIES)]
    assert len(keys) == 2 and all("700000042" not in key for key in keys), keys


async def test_the_apis_rate_limit_and_idempotency_on_a_cluster(cluster: Client) -> None:
    hot = hot_client(cluster)
    limiter = RateLimiter(hot, rate_per_s=1, burst=3)
    waits = [await limiter.take(key_id) for key_id in (1, 2) for _ in range(4)]
    assert [w == 0 for w in waits] == [True, True, True, False] * 2
    idempotency = Idempotency(hot, ttl_s=60)
    where = redis_key(7, "order-1")
    assert await idempotency.claim(where, "fp") is None
    await idempotency.store(where, "fp", Stored(201, b"{}", "application/json"))
    assert await idempotency.claim(where, "fp") == Stored(201, b"{}", "application/json")
    await idempotency.release(where)
    assert await idempotency.claim(where, "fp") is None


async def test_the_bots_send_rate_on_a_cluster(cluster: Client) -> None:
    limiter = Limiter(cluster, bot="123456", rate=10, chat_interval_s=1)
    first, second = await limiter.reserve(1), await limiter.reserve(1)
    assert first == 0 and 0.9 <= second <= 1.0
    other = await limiter.reserve(2)  # another chat: the bot's next moment after the second
    assert 1.0 <= other <= 1.2
    await limiter.pause(5)
    assert await limiter.reserve(3) >= 4.5


async def test_routing_breakers_on_a_cluster(cluster: Client, settings: Settings) -> None:
    health = Health.from_settings(settings, cluster)
    for _ in range(health.failures_to_open):
        await health.record(account="alpha", operator="op", result=Result.ERROR, latency_ms=5)
    assert await health.admit("op", ["alpha", "beta"]) == "beta"
    states = await read_all(cluster)
    assert states[("alpha", "op")]["state"] == "open"


async def test_an_invite_code_is_taken_once_on_a_cluster(cluster: Client) -> None:
    await cluster.set(links.INVITE_PREFIX + "code1", 42, px=60_000)
    left_ms, party = await links._TAKE(cluster, [links.INVITE_PREFIX + "code1"], [])
    assert 0 < left_ms <= 60_000 and int(party) == 42
    assert await links._TAKE(cluster, [links.INVITE_PREFIX + "code1"], []) == [-2, None]


@pytest.fixture
async def cluster_settings(
    settings: Settings, cluster: Client, cluster_url: str, redis_url: str
) -> AsyncIterator[Settings]:
    """The app's settings on the cluster, the queue on the shared test Redis (arq cannot run on a
    cluster), the aggregator and SMS gateway a real sandbox over HTTP."""
    async with sandbox_serving(SANDBOX) as url:
        yield settings.model_copy(
            update={
                **FAST,
                "redis_url": cluster_url,
                "queue_redis_url": redis_url,
                "ussd_secret": SecretStr(SECRET),
                "provider_url": url,
                "provider_auth_url": url,
                "sms_url": url,
            }
        )


async def test_a_ussd_journey_over_http_and_its_delivery_with_redis_on_a_cluster(
    cluster_settings: Settings, core: Core, cluster: Client, cluster_url: str, redis_url: str
) -> None:
    """serve's sessions, resume point and rate keys on the cluster, the job on the plain Redis; a
    worker delivers it, its breakers and float on the cluster."""
    await seed_demo(core, retailers=1)
    async with TestClient(TestServer(build_app(cluster_settings))) as on_cluster:
        phone = AtPhone(on_cluster, "+254700000001")
        await phone.dial()
        await phone.send("1")
        await phone.send("0788123456")
        confirm = await phone.send("500")
        assert confirm.startswith("CON"), confirm
        # Dropped here: a redial offers to continue, from the resume point kept on the cluster.
        again = phone.redial()
        offer = await again.dial()
        assert offer.startswith("CON") and "1. Continue" in offer, offer
        assert (await again.send("1")) == confirm
        done = await again.send(PIN)
        assert done.startswith("END Top-up of KES 500 to 0788123456 accepted."), done
        ready = await on_cluster.get("/readyz")
        assert ready.status == 200, await ready.text()
    queue = aioredis.Redis.from_url(redis_url)
    try:
        assert await queue.zcard(QUEUE) >= 1  # its delivery job, on the queue's own Redis
    finally:
        await queue.aclose()

    worker = build_worker(
        cluster_settings, redis_url=cluster_settings.redis_url, handle_signals=False
    )
    task = asyncio.create_task(run_worker(worker))
    try:

        async def delivered() -> bool:
            async with core.sessions() as session:
                (topup,) = (await session.execute(select(Topup))).scalars().all()
            return topup.state == TopupState.DELIVERED

        await eventually(delivered, what="the top-up delivered by a worker on the cluster")
    finally:
        worker.handle_sig(signal.SIGUSR1)
        await task
    breakers = await read_all(cluster)  # the worker's router recorded the send there
    assert any(int(state.get("ok", 0)) >= 1 for state in breakers.values()), breakers


NOT_NOW = f"END {t('en', 'error.store_unavailable')}"


@pytest.fixture
def own_cluster() -> Iterator[list[RedisServer]]:
    """A cluster of this test's own: it pauses a node, and the cluster marks it failed."""
    with redis_cluster(3) as servers:
        yield servers


@pytest.mark.slow  # a fault run: the node must stay paused past the cluster's node timeout
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # a bystander here
async def test_a_paused_node_is_try_again_for_its_users_and_503_then_recovers(
    settings: Settings, core: Core, own_cluster: list[RedisServer], redis_url: str
) -> None:
    """A node paused (SIGSTOP) past the cluster's node timeout: its users hear "try again"
    within the Redis timeout and its one retry, /readyz says 503 naming Redis (it pings every
    primary), and once the node answers and the cluster is whole again every hop works, with no
    restart."""
    await seed_demo(core, retailers=3)
    url = "redis+cluster://" + ",".join(f"127.0.0.1:{s.port}" for s in own_cluster) + "/"
    app_settings = settings.model_copy(
        update={"redis_url": url, "queue_redis_url": redis_url, "ussd_secret": SecretStr(SECRET)}
    )
    shops = ["+254700000001", "+254700000002", "+254700000003"]
    async with TestClient(TestServer(build_app(app_settings))) as test_client:
        store = test_client.app[ENGINE].store
        cluster = test_client.app[REDIS]
        assert isinstance(cluster, RedisCluster)
        for shop in shops:  # every node has been used: its connections are open
            assert (await AtPhone(test_client, shop).dial()).startswith("CON")

        def node_of(shop: str) -> int:
            node = cluster.get_node_from_key(store.resume_key("ussd", shop))
            return next(i for i, s in enumerate(own_cluster) if s.port == node.port)

        paused = node_of(shops[0])
        own_cluster[paused].pause()
        try:
            started = time.monotonic()
            assert await AtPhone(test_client, shops[0]).dial() == NOT_NOW
            assert time.monotonic() - started < 2 * 1.0 + 1.5  # the timeout, its retry, slack
            ready = await test_client.get("/readyz")
            body = await ready.json()
            assert ready.status == 503 and body["redis"] != "ok", body
            # Past the node timeout (5 s) the others mark it failed and, with no replica to
            # promote, refuse every slot (CLUSTERDOWN): "try again" for everyone, never an error.
            await asyncio.sleep(6)
            for shop in shops:
                screen = await AtPhone(test_client, shop).dial()
                assert screen == NOT_NOW or screen.startswith("CON"), screen
        finally:
            own_cluster[paused].resume()

        async def all_served() -> bool:
            screens = [await AtPhone(test_client, shop).dial() for shop in shops]
            ready = await test_client.get("/readyz")
            return ready.status == 200 and all(s.startswith("CON") for s in screens)

        await eventually(
            all_served, what="every user served after the node came back", timeout_s=30
        )


def test_a_cluster_url_without_a_queue_of_its_own_is_refused(cluster_url: str) -> None:
    with pytest.raises(Exception, match="AIRGATE_QUEUE_REDIS_URL"):
        Settings(redis_url=cluster_url)
