"""OAuth client credentials: fetched lazily, shared, renewed before expiry and once on a 401."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from core.errors import ProviderUnavailable
from core.providers.reloadly import ReloadlyProvider
from sandbox.config import SandboxConfig
from tests.providers.conftest import FAST, MakeProvider, Sandbox, serve


async def test_token_is_fetched_once_and_shared_by_concurrent_callers(
    sandbox: Sandbox, provider: ReloadlyProvider
) -> None:
    assert (await sandbox.stats())["tokens"] == 0  # nothing happens before the first call
    await asyncio.gather(*(provider.balance() for _ in range(20)))
    await provider.balance()
    assert (await sandbox.stats())["tokens"] == 1


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(token_ttl_s=1, seed=1)])
async def test_token_is_renewed_before_it_expires(
    sandbox: Sandbox, provider: ReloadlyProvider
) -> None:
    await provider.balance()
    await asyncio.sleep(1.0)  # past 90 % of the 1 s life: renewed before the sandbox refuses it
    await asyncio.gather(*(provider.balance() for _ in range(10)))
    stats = await sandbox.stats()
    assert stats["tokens"] == 2


async def test_a_refused_token_is_renewed_once_and_the_call_retried(
    sandbox: Sandbox, provider: ReloadlyProvider
) -> None:
    await provider.balance()
    await sandbox.reset()  # the sandbox forgets every token: the next call gets 401 INVALID_TOKEN
    balance = await provider.balance()
    assert balance.balance_minor == FAST.initial_balance_minor
    assert (await sandbox.stats())["tokens"] == 1  # counted since the reset


async def test_wrong_credentials_are_unavailable_not_a_refusal_of_the_top_up(
    sandbox: Sandbox, make_provider: MakeProvider
) -> None:
    adapter = await make_provider(sandbox.url, client_secret="wrong")
    with pytest.raises(ProviderUnavailable, match="token refused: HTTP 401 INVALID_CREDENTIALS"):
        await adapter.balance()


async def test_a_second_401_after_renewal_gives_up(make_provider: MakeProvider) -> None:
    """An aggregator that refuses every token: one renewal, one retry, then unavailable."""
    tokens = 0

    async def token(_request: web.Request) -> web.Response:
        nonlocal tokens
        tokens += 1
        return web.json_response({"access_token": f"t{tokens}", "expires_in": 3600})

    async def refuse(request: web.Request) -> web.Response:
        body = {"errorCode": "INVALID_TOKEN", "message": "no", "path": request.path}
        return web.json_response(body, status=401)

    app = web.Application()
    app.router.add_post("/oauth/token", token)
    app.router.add_get("/accounts/balance", refuse)
    async with serve(app) as url:
        adapter = await make_provider(url)
        with pytest.raises(ProviderUnavailable, match="token refused after renewal"):
            await adapter.balance()
    assert tokens == 2
