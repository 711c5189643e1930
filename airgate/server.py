"""``airgate serve``: one aiohttp application for every inbound HTTP route.

``/health``, ``/metrics``, the USSD gateways (``/ussd/{gateway}``, ussd/app.py) and, when a bot
token is set, the Telegram webhook (``/telegram/webhook``, bot/webhook.py); the reseller API
(``api/``) mounts its routes here when it lands. Resources
(the core, Redis, the job queue and the one conversation engine) are built in a cleanup context and
reached through typed AppKeys; nothing connects at import.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from telegram.ext import Application

from bot import webhook as telegram_webhook
from bot.channel import ALLOWED_UPDATES, TelegramChannel
from core.context import Core, open_core
from core.conversation.engine import Engine
from core.conversation.flows import FLOWS
from core.conversation.sessions import SessionStore
from core.jobs.queue import JobQueue
from core.logging import get_logger
from core.redis import redis_for
from core.settings import Settings
from ussd import app as ussd

CORE = web.AppKey("core", Core)
REDIS = web.AppKey("redis", aioredis.Redis)
ENGINE = web.AppKey("engine", Engine)
TELEGRAM = web.AppKey("telegram", Application)

log = get_logger(__name__)


def build_app(settings: Settings) -> web.Application:
    app = web.Application()

    async def resources(app: web.Application) -> AsyncIterator[None]:
        async with (
            redis_for(configured=settings.redis_url, var_dir=settings.var_dir) as url,
            open_core(settings) as core,
        ):
            app[CORE] = core
            app[REDIS] = redis = aioredis.Redis.from_url(url)
            app[ENGINE] = engine = conversation_engine(core, redis)
            try:
                async with AsyncExitStack() as stack:
                    if settings.telegram_token:
                        app[TELEGRAM] = await _start_bot(stack, settings, engine, redis)
                    yield
            finally:
                await redis.aclose()

    app.cleanup_ctx.append(resources)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    ussd.add_routes(app, settings=settings, engine=ENGINE)
    if settings.telegram_token:
        telegram_webhook.add_route(app, settings=settings, application=TELEGRAM)
    else:
        log.info("Telegram bot off: AIRGATE_TELEGRAM_TOKEN is not set")
    return app


def conversation_engine(core: Core, redis: aioredis.Redis) -> Engine:
    """The one engine of a process: sessions and the job queue on ``redis``, every role's flow."""
    settings = core.settings
    ttl_s = {"ussd": settings.ussd_session_ttl_s, "telegram": settings.telegram_session_ttl_s}
    queue = JobQueue.on_pool(redis.connection_pool)
    return Engine(core=core, store=SessionStore(redis, ttl_s=ttl_s), queue=queue, flows=FLOWS)


async def _start_bot(
    stack: AsyncExitStack, settings: Settings, engine: Engine, redis: aioredis.Redis
) -> Application:  # type: ignore[type-arg]
    """The bot's application, initialised (getMe), and registered as the webhook when a public
    URL is configured."""
    application = TelegramChannel(engine=engine, redis=redis, settings=settings).build()
    await application.initialize()
    stack.push_async_callback(application.shutdown)
    if settings.telegram_webhook_url:
        await application.bot.set_webhook(
            settings.telegram_webhook_url,
            secret_token=telegram_webhook.webhook_secret(settings),
            allowed_updates=ALLOWED_UPDATES,
        )
    return application


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
