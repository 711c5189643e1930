"""The SSRF guard where a name is resolved: a real aiohttp client and a real local server."""

from __future__ import annotations

import aiohttp
import pytest

from core.services.callbacks import guard
from tests.fakes.receiver import receiver


async def test_a_name_resolving_to_loopback_is_refused_at_connection_time() -> None:
    async with receiver() as got:
        port = got.url.rsplit(":", 1)[1]
        url = f"http://localhost:{port}/cb"  # what DNS rebinding would hand us
        refused = aiohttp.TCPConnector(**guard.connector_options(allow_private=False))
        async with aiohttp.ClientSession(connector=refused) as http:
            with pytest.raises(aiohttp.ClientConnectorError, match="private, loopback"):
                await http.post(url, data=b"{}")
        allowed = aiohttp.TCPConnector(**guard.connector_options(allow_private=True))
        async with (
            aiohttp.ClientSession(connector=allowed) as http,
            http.post(url, data=b"{}") as resp,
        ):
            assert resp.status == 200
    assert len(got.posts) == 1  # only the allowed one arrived
