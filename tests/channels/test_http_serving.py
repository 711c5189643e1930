"""What `airgate serve` does for operators and against slow clients, over real sockets: /healthz,
/readyz (503 within its timeout when Redis does not answer), the ops listener of its own, and
request heads and bodies dribbled byte by byte closed within their timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from airgate.server import build_app, build_ops_app
from core.context import Core
from core.settings import Settings

TIMEOUT_S = 0.5
SLACK_S = 10.0  # for a busy machine (load average 40): still far below "never" (NEVER_S)
NEVER_S = 30.0  # a connection held this long was never going to be closed


@pytest.fixture
async def quick(app_settings: Settings, core: Core) -> AsyncIterator[TestClient]:
    settings = app_settings.model_copy(
        update={"http_header_timeout_s": TIMEOUT_S, "http_body_timeout_s": TIMEOUT_S}
    )
    async with TestClient(TestServer(build_app(settings))) as client:
        yield client


async def _held_for(client: TestClient, first: bytes, drip: bytes) -> float:
    """Send ``first``, then ``drip`` every 0.1 s, until the server closes the connection (or
    NEVER_S pass): how long the server held it."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    started = loop.time()
    writer.write(first)
    try:
        while loop.time() - started < NEVER_S:
            try:  # the client's pace, and at the same time a watch for the server's close
                if await asyncio.wait_for(reader.read(4096), 0.1) == b"":
                    break
                continue  # a response (408) came: its close follows
            except TimeoutError:
                writer.write(drip)
                await writer.drain()
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        writer.close()
    return loop.time() - started


async def test_clients_dribbling_heads_or_bodies_are_closed_within_the_timeouts(
    quick: TestClient,
) -> None:
    head = b"POST /ussd/africastalking HTTP/1.1\r\nHost: airgate\r\n"
    body_head = head + b"Content-Type: application/x-www-form-urlencoded\r\n"
    body_head += b"Content-Length: 100000\r\n\r\nsessionId="
    heads = [_held_for(quick, head, b"X-Slow: 1\r\n") for _ in range(50)]
    bodies = [_held_for(quick, body_head, b"1") for _ in range(50)]
    held = await asyncio.gather(*heads, *bodies)
    assert max(held) < TIMEOUT_S + SLACK_S, sorted(held)[-5:]
    # and an honest request still gets its answer
    assert (await quick.get("/healthz")).status == 200


async def test_an_idle_connection_is_closed_too(quick: TestClient) -> None:
    assert await _held_for(quick, b"", b"") < TIMEOUT_S + SLACK_S


@pytest.fixture
async def blackhole() -> AsyncIterator[int]:
    """A port that accepts connections and never answers: a Redis that hangs."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_readyz_says_503_naming_redis_within_its_timeout(
    app_settings: Settings, core: Core, blackhole: int
) -> None:
    settings = app_settings.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{blackhole}/0", "ready_timeout_s": TIMEOUT_S}
    )
    loop = asyncio.get_running_loop()
    async with TestClient(TestServer(build_app(settings))) as client:
        assert (await client.get("/healthz")).status == 200  # alive: asks nothing
        for path in ("/readyz", "/health"):
            started = loop.time()
            response = await client.get(path)
            assert loop.time() - started < TIMEOUT_S + SLACK_S
            assert response.status == 503
            body = await response.json()
            assert body == {"status": "degraded", "database": "ok", "redis": "timeout"}


async def test_readyz_is_200_when_both_answer(client: TestClient) -> None:
    response = await client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {"status": "ok", "database": "ok", "redis": "ok"}


async def test_health_and_metrics_on_their_own_listener(
    app_settings: Settings, core: Core
) -> None:
    settings = app_settings.model_copy(update={"ops_port": 1})  # any: TestServer picks its own
    main = build_app(settings)
    async with (
        TestClient(TestServer(main)) as gateways,
        TestClient(TestServer(build_ops_app(settings, main))) as ops,
    ):
        for path in ("/healthz", "/readyz", "/health", "/metrics"):
            assert (await ops.get(path)).status == 200, path
            assert (await gateways.get(path)).status == 404, path
        assert "airgate_ussd_hops_total" in await (await ops.get("/metrics")).text()
