"""What operators probe: ``/healthz`` (alive), ``/readyz`` (ready), ``/health`` (= readyz, kept
for what already probes it) and ``/metrics`` (Prometheus).

Invariant: a probe answers within its own timeout whatever the database and Redis do: ``/healthz``
touches nothing, and ``/readyz`` gives each of them AIRGATE_READY_TIMEOUT_S before it says 503
naming which did not answer. The routes are served with the gateways' or on their own listener
(AIRGATE_OPS_PORT); either way they read the resources of the main application.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial

import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import text

from core.context import Core

CORE = web.AppKey("core", Core)
REDIS = web.AppKey("redis", aioredis.Redis)


def add_routes(app: web.Application, *, main: web.Application, ready_timeout_s: float) -> None:
    ready = partial(readyz, main=main, timeout_s=ready_timeout_s)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", ready)
    app.router.add_get("/health", ready)
    app.router.add_get("/metrics", metrics)


async def healthz(_request: web.Request) -> web.Response:
    """The process answers: nothing else is asked."""
    return web.json_response({"status": "ok"})


async def readyz(_request: web.Request, *, main: web.Application, timeout_s: float) -> web.Response:
    """200 when the database and Redis both answer within ``timeout_s``, else 503 naming what
    did not (``"timeout"`` or the error's type; never its text, which may carry a URL)."""

    async def database() -> None:
        async with main[CORE].engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def redis() -> None:
        await main[REDIS].ping()

    names = ("database", "redis")
    results = await asyncio.gather(*(_within(timeout_s, probe) for probe in (database, redis)))
    checks = dict(zip(names, results, strict=True))
    ok = all(result == "ok" for result in results)
    body = {"status": "ok" if ok else "degraded", **checks}
    return web.json_response(body, status=200 if ok else 503)


async def _within(timeout_s: float, probe: Callable[[], Awaitable[None]]) -> str:
    try:
        async with asyncio.timeout(timeout_s):
            await probe()
    except TimeoutError:
        return "timeout"
    except Exception as exc:  # whatever it is, the probe answers and names it
        return type(exc).__name__
    return "ok"


async def metrics(_request: web.Request) -> web.Response:
    body = generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
