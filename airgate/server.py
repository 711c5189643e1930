"""``airgate serve``: one aiohttp application for every inbound HTTP route.

``/health``, ``/metrics`` and the USSD gateways (``/ussd/{gateway}``, ussd/app.py); the Telegram
webhook (``bot/``) and the reseller API (``api/``) mount their routes here as they land. Resources
(the core, Redis, the job queue and the one conversation engine) are built in a cleanup context and
reached through typed AppKeys; nothing connects at import.
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
from core.conversation.engine import Engine
from core.conversation.flows import FLOWS
from core.conversation.sessions import SessionStore
from core.jobs.queue import JobQueue
from core.redis import redis_url
from core.settings import Settings
from ussd import app as ussd

CORE = web.AppKey("core", Core)
REDIS = web.AppKey("redis", aioredis.Redis)
ENGINE = web.AppKey("engine", Engine)


def build_app(settings: Settings) -> web.Application:
    app = web.Application()

    async def resources(app: web.Application) -> AsyncIterator[None]:
        url, _started = await redis_url(configured=settings.redis_url, var_dir=settings.var_dir)
        async with open_core(settings) as core:
            app[CORE] = core
            app[REDIS] = redis = aioredis.Redis.from_url(url)
            queue = JobQueue.on_pool(redis.connection_pool)
            store = SessionStore(
                redis,
                ttl_s={
                    "ussd": settings.ussd_session_ttl_s,
                    "telegram": settings.telegram_session_ttl_s,
                },
            )
            app[ENGINE] = Engine(core=core, store=store, queue=queue, flows=FLOWS)
            try:
                yield
            finally:
                await redis.aclose()

    app.cleanup_ctx.append(resources)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    ussd.add_routes(app, settings=settings, engine=ENGINE)
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
