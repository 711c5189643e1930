"""A callback receiver as a reseller would run one: a real aiohttp server on 127.0.0.1.

It records every POST (headers, raw body, when it arrived) and answers each path from a script:
``fail_first`` answers 500 that many times per path before 200; ``hold`` keeps a request open until
released (a worker killed while it waits). Deduplication by ``AirGate-Event-Id`` is what a real
receiver does: :meth:`events` counts distinct events, :meth:`posts` every POST.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Post:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival


@dataclass
class Receiver:
    url: str = ""
    fail_first: dict[str, int] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)  # a path's answer once it stops failing
    hold: asyncio.Event | None = None  # set: requests wait for it before answering
    posts: list[Post] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.posts.append(
            Post(request.path, dict(request.headers), await request.read(), time.monotonic())
        )
        self.arrived.set()
        if self.hold is not None:
            await self.hold.wait()
        seen = sum(1 for p in self.posts if p.path == request.path)
        if seen <= self.fail_first.get(request.path, 0):
            return web.Response(status=500, text="not now")
        return web.Response(status=self.status.get(request.path, 200), text="ok")

    def to(self, path: str) -> list[Post]:
        return [p for p in self.posts if p.path == path]

    def events(self, path: str) -> set[str]:
        return {p.headers["AirGate-Event-Id"] for p in self.to(path)}

    async def wait_posts(self, path: str, count: int, *, timeout_s: float = 20) -> list[Post]:
        deadline = time.monotonic() + timeout_s
        while len(found := self.to(path)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} POSTs to {path} after {timeout_s} s")
            await asyncio.sleep(0.05)
        return found


@asynccontextmanager
async def receiver(**options: object) -> AsyncIterator[Receiver]:
    got = Receiver(**options)  # type: ignore[arg-type]
    app = web.Application()
    app.router.add_post("/{tail:.*}", got.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        got.url = f"http://{host}:{port}"
        yield got
    finally:
        if got.hold is not None:
            got.hold.set()
        await runner.cleanup()
