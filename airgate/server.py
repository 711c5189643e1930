"""``airgate serve``: one aiohttp application for every inbound HTTP route.

Today: ``/health`` and ``/metrics``. The USSD dialects (``ussd/``), the Telegram webhook (``bot/``)
and the reseller API (``api/``) mount their routes here as they land. Resources are built in a
cleanup context and reached through typed AppKeys; nothing connects at import.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from core.context import Core, open_core
from core.redis import redis_url
from core.settings import Settings

CORE = web.AppKey("core", Core)
REDIS = web.AppKey("redis", aioredis.Redis)


def build_app(settings: Settings) -> web.Application:
    app = web.Application()

    async def resources(app: web.Application) -> AsyncIterator[None]:
        url, _started = await redis_url(configured=settings.redis_url, var_dir=settings.var_dir)
        async with open_core(settings) as core:
            app[CORE] = core
            app[REDIS] = aioredis.Redis.from_url(url)
            try:
                yield
            finally:
                await app[REDIS].aclose()

    app.cleanup_ctx.append(resources)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    return app


async def health(request: web.Request) -> web.Response:
    """200 when the database and Redis both answer, else 503 naming what does not."""
    checks: dict[str, str] = {}
    try:
        async with request.app[CORE].engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except (SQLAlchemyError, OSError) as exc:
        checks["database"] = type(exc).__name__
    try:
        await request.app[REDIS].ping()
        checks["redis"] = "ok"
    except (RedisError, OSError) as exc:
        checks["redis"] = type(exc).__name__
    ok = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ok" if ok else "degraded", **checks}, status=200 if ok else 503
    )


async def metrics(_request: web.Request) -> web.Response:
    body = generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
