"""The real sandbox app on a real TCP port, and the real adapters talking to it over HTTP.

Clocks: slow 0.2 s < a hasty client's time-out 0.5 s < settle 2.5 s < hang 4 s < the ordinary
client's time-out 15 s. A time-out a test expects comes from the hasty client against a sandbox that
holds its answer for 4 s (it fires however loaded the machine is); the ordinary client never times
out on an answer that is merely slow to be scheduled. Fake *external* servers (shapes the sandbox
never produces: broken bodies, resets, duplicate refusals) are tiny aiohttp apps started with
:func:`serve`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from core.providers.port import TopupOrder
from core.providers.reloadly import ReloadlyProvider
from core.providers.sms import AfricasTalkingSms
from sandbox.app import build_app
from sandbox.config import SandboxConfig

CLIENT_TIMEOUT_S = 15.0
HASTY_TIMEOUT_S = 0.5
# slow (0.2 s) < hasty time-out (0.5 s) < settle (2.5 s) < hang (4 s) < client time-out (15 s)
FAST = SandboxConfig(hang_s=4.0, settle_s=2.5, slow_ms=200, seed=1)
SAFARICOM = "1"  # the sandbox's (Reloadly's) id for Safaricom airtime


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """``app`` on 127.0.0.1, a free port; yields its base URL. In-flight handlers get 0.2 s."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


class Sandbox:
    """The sandbox's base URL and its inspection routes."""

    def __init__(self, url: str, http: aiohttp.ClientSession) -> None:
        self.url = url
        self.http = http

    async def stats(self, reference: str | None = None) -> dict[str, Any]:
        params = {"reference": reference} if reference else {}
        async with self.http.get(f"{self.url}/sandbox/stats", params=params) as resp:
            assert resp.status == 200
            body: dict[str, Any] = await resp.json()
            return body

    async def sms(self, to: str | None = None) -> list[dict[str, Any]]:
        params = {"to": to} if to else {}
        async with self.http.get(f"{self.url}/sandbox/sms", params=params) as resp:
            assert resp.status == 200
            body: list[dict[str, Any]] = await resp.json()
            return body

    async def reset(self) -> None:
        async with self.http.post(f"{self.url}/sandbox/reset") as resp:
            assert resp.status == 200


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return FAST


@pytest.fixture
async def sandbox(sandbox_config: SandboxConfig) -> AsyncIterator[Sandbox]:
    async with serve(build_app(sandbox_config)) as url, aiohttp.ClientSession() as http:
        yield Sandbox(url, http)


def reloadly(url: str, **overrides: Any) -> ReloadlyProvider:
    args: dict[str, Any] = {
        "base_url": url,
        "auth_url": url,
        "client_id": "sandbox",
        "client_secret": "sandbox",
        "timeout_s": CLIENT_TIMEOUT_S,
        "connect_timeout_s": 1.0,
    }
    return ReloadlyProvider(**{**args, **overrides})


@pytest.fixture
async def provider(sandbox: Sandbox) -> AsyncIterator[ReloadlyProvider]:
    adapter = reloadly(sandbox.url)
    try:
        yield adapter
    finally:
        await adapter.close()


@pytest.fixture
async def hasty(sandbox: Sandbox) -> AsyncIterator[ReloadlyProvider]:
    """A client that gives up after 0.5 s: for the …2/…3 sends the sandbox holds for 4 s."""
    adapter = reloadly(sandbox.url, timeout_s=HASTY_TIMEOUT_S)
    try:
        yield adapter
    finally:
        await adapter.close()


MakeProvider = Callable[..., Awaitable[ReloadlyProvider]]


@pytest.fixture
async def make_provider() -> AsyncIterator[MakeProvider]:
    """Providers with other arguments (URLs, time-outs), all closed at the end."""
    made: list[ReloadlyProvider] = []

    async def make(url: str, **overrides: Any) -> ReloadlyProvider:
        made.append(reloadly(url, **overrides))
        return made[-1]

    try:
        yield make
    finally:
        for adapter in made:
            await adapter.close()


@pytest.fixture
async def sms(sandbox: Sandbox) -> AsyncIterator[AfricasTalkingSms]:
    sender = AfricasTalkingSms(base_url=sandbox.url, username="sandbox", api_key="sandbox")
    try:
        yield sender
    finally:
        await sender.close()


_ORDER = TopupOrder(
    reference="",
    msisdn="",
    country="KE",
    operator="safaricom-ke",
    operator_ref=SAFARICOM,
    amount_minor=5_000,
    currency="KES",
)


def order(last_digit: int, reference: str, **changes: Any) -> TopupOrder:
    """A KES 50 Safaricom top-up to +25471234567<last_digit>."""
    fields = {"reference": reference, "msisdn": f"+25471234567{last_digit}", **changes}
    return replace(_ORDER, **fields)
