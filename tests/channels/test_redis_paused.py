"""Redis paused (SIGSTOP: the kernel accepts connections, nothing answers) under the real app over
HTTP: a USSD hop says "not available for a moment" within a few seconds instead of hanging,
``/readyz`` and ``/health`` say 503 naming Redis within AIRGATE_READY_TIMEOUT_S, and once Redis
answers again (SIGCONT) both recover by themselves. A private ``redis-server``, never the shared
one."""

from __future__ import annotations

import time

import pytest
from aiohttp.test_utils import TestClient

from core.i18n import t
from core.settings import Settings
from tests.channels.conftest import AtPhone
from tests.helpers import eventually
from tests.redis_servers import RedisServer

NOT_NOW = f"END {t('en', 'error.store_unavailable')}"
TIMEOUT_S = 1.0  # AIRGATE_REDIS_TIMEOUT_S's default
READY_TIMEOUT_S = 2.0  # AIRGATE_READY_TIMEOUT_S's default
SLACK_S = 1.5  # a loaded shared machine


@pytest.fixture
def client(private_client: TestClient, app_settings: Settings) -> TestClient:
    assert (app_settings.redis_timeout_s, app_settings.ready_timeout_s) == (
        TIMEOUT_S,
        READY_TIMEOUT_S,
    )
    return private_client


async def _ready(client: TestClient, path: str) -> tuple[int, dict[str, str], float]:
    started = time.monotonic()
    response = await client.get(path)
    return response.status, await response.json(), time.monotonic() - started


async def test_a_paused_redis_is_a_try_again_screen_and_503_then_recovers(
    client: TestClient, redis_server: RedisServer
) -> None:
    phone = AtPhone(client, "+254700000001")
    menu = await phone.dial()
    assert menu.startswith("CON"), menu  # the pooled connections are open and used
    assert (await _ready(client, "/readyz"))[0] == 200

    redis_server.pause()
    try:
        started = time.monotonic()
        assert await phone.send("1") == NOT_NOW  # mid-journey: its session's read hangs
        assert await phone.redial().dial() == NOT_NOW  # a new dial: its first write hangs
        took = time.monotonic() - started
        assert took < 2 * (2 * TIMEOUT_S + SLACK_S), took
        for path in ("/readyz", "/health"):
            status, body, took = await _ready(client, path)
            assert status == 503 and body["redis"] != "ok" and body["database"] == "ok", body
            assert took < READY_TIMEOUT_S + SLACK_S, took
    finally:
        redis_server.resume()

    async def recovered() -> bool:
        return (await AtPhone(client, "+254700000001").dial()).startswith("CON")

    await eventually(recovered, what="a hop answered after Redis came back", timeout_s=10)
    for path in ("/readyz", "/health"):
        status, body, _took = await _ready(client, path)
        assert status == 200, body


async def test_a_redis_that_accepts_nothing_new_bounds_a_new_connection_too(
    client: TestClient, redis_server: RedisServer
) -> None:
    """Paused before the app ever connected: opening a connection (TCP succeeds, its first
    command is never answered) is bounded as a reply is."""
    redis_server.pause()
    try:
        started = time.monotonic()
        assert await AtPhone(client, "+254700000001").dial() == NOT_NOW
        assert time.monotonic() - started < 2 * TIMEOUT_S + SLACK_S
    finally:
        redis_server.resume()
    await eventually(
        lambda: _menu(client), what="a hop answered after Redis came back", timeout_s=10
    )


async def _menu(client: TestClient) -> bool:
    return (await AtPhone(client, "+254700000001").dial()).startswith("CON")
