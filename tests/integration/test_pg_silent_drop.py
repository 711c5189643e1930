"""A pooled connection dropped without a word (a NAT or firewall forgetting it: no FIN, no
reset; here a proxy that stops passing its bytes on) is pinged once idle, found silent within
core.db.PING_TIMEOUT_S, and replaced: the unit of work runs on a new connection."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from urllib.parse import urlparse

import pytest
from sqlalchemy import text

from core import db
from core.context import open_core
from core.settings import Settings

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


class SilencingProxy:
    """TCP in front of PostgreSQL; :meth:`silence` makes every connection open now go quiet
    both ways (its bytes read and dropped, its sockets left open); later ones pass."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.silenced: set[int] = set()
        self.open: set[int] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: list[asyncio.StreamWriter] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        key = id(writer)
        self.open.add(key)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self.writers += [writer, up_writer]
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(key, source, sink))
            self.tasks.add(task)

    async def _pump(
        self, key: int, source: asyncio.StreamReader, sink: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(65536):
                if key not in self.silenced:
                    sink.write(data)
                    await sink.drain()
            if key not in self.silenced:
                sink.close()  # one side hung up: so does the other, as a real path would

    def silence(self) -> None:
        self.silenced |= self.open

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for writer in self.writers:
            writer.close()


@pytest.fixture
async def proxy(settings: Settings) -> AsyncIterator[tuple[SilencingProxy, int]]:
    silencer = SilencingProxy(urlparse(settings.database_url).port or 5432)
    server = await asyncio.start_server(silencer.serve, "127.0.0.1", 0)
    try:
        yield silencer, server.sockets[0].getsockname()[1]
    finally:
        await silencer.close()
        server.close()


async def test_a_silently_dropped_connection_is_replaced(
    settings: Settings, proxy: tuple[SilencingProxy, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    silencer, port = proxy
    monkeypatch.setattr(db, "PING_IDLE_S", 0.2)  # the idle window, shortened for the test
    monkeypatch.setattr(db, "PING_TIMEOUT_S", 0.5)
    through = urlparse(settings.database_url)._replace(netloc=f"postgres@127.0.0.1:{port}")
    quiet = settings.model_copy(
        update={"database_url": through.geturl(), "db_pool_size": 1, "db_timeout_s": 20}
    )
    async with open_core(quiet) as core:
        async with core.transaction() as session:
            first = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        silencer.silence()
        await asyncio.sleep(0.3)  # idle past the window: what the feature is about is time
        started = time.monotonic()
        async with core.transaction() as session:
            again = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert again != first
        assert time.monotonic() - started < 0.5 + 3  # the ping's time-out, not the statement's
