"""``airgate serve``: one aiohttp application for every inbound HTTP route.

Health and metrics (airgate/ops.py: ``/healthz``, ``/readyz``, ``/health``, ``/metrics``, here or
on their own listener), the USSD gateways (``/ussd/{gateway}``, ussd/app.py) and, when a bot
token is set, the Telegram webhook (``/telegram/webhook``, bot/webhook.py); the reseller API
(``/api/v1``, api/app.py) as a sub-application. Resources
(the core, Redis, the job queue and the one conversation engine) are built in a cleanup context and
reached through typed AppKeys; nothing connects at import.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from telegram.error import TelegramError
from telegram.ext import Application

from airgate import ops
from airgate.ops import CORE, QUEUE, REDIS
from api import app as rest_api
from bot import channel as telegram
from bot import webhook as telegram_webhook
from bot.channel import ALLOWED_UPDATES, TelegramChannel
from core.context import Core, open_core
from core.conversation.channel import Channel
from core.conversation.engine import Engine
from core.conversation.flow import LINK, journeys_of
from core.conversation.flows import FLOWS, LINK_FLOW
from core.conversation.sessions import REF_KEY_PURPOSE, SessionStore
from core.jobs.queue import JobQueue, queue_client
from core.logging import get_logger
from core.redis import Client, Timeouts
from core.redis import connected as redis_connected
from core.settings import Settings
from ussd import app as ussd
from ussd import channel as ussd_channel
from ussd.gateway import BODY_TOO_LARGE

ENGINE = web.AppKey("engine", Engine)
TELEGRAM = web.AppKey("telegram", Application)

log = get_logger(__name__)

# The channels the app serves: each declares itself beside its adapter (core/conversation/
# channel.py says what a declaration holds). A new channel is one more line here.
CHANNELS: tuple[Channel, ...] = (ussd_channel.CHANNEL, telegram.CHANNEL)


def build_app(settings: Settings) -> web.Application:
    app = web.Application(
        client_max_size=settings.http_max_body_bytes,
        middlewares=[body_within(settings.http_body_timeout_s)],
        handler_args=handler_args(settings),
    )

    async def resources(app: web.Application) -> AsyncIterator[None]:
        async with redis_connected(settings) as redis, open_core(settings) as core:
            app[CORE] = core
            app[REDIS] = redis
            app[QUEUE] = queue = job_queue(settings, redis)
            app[ENGINE] = engine = conversation_engine(core, redis, queue=queue)
            try:
                async with AsyncExitStack() as stack:
                    if settings.telegram_token:
                        app[TELEGRAM] = await _start_bot(stack, settings, engine, redis)
                    yield
            finally:
                await queue.close()

    app.cleanup_ctx.append(resources)
    if settings.ops_port is None:
        ops.add_routes(app, main=app, ready_timeout_s=settings.ready_timeout_s)
    ussd.add_routes(app, settings=settings, engine=ENGINE)
    rest = rest_api.build(
        settings, core=CORE, redis=REDIS, queue=QUEUE, main=app, body_too_large=BODY_TOO_LARGE
    )
    rest_api.mount(app, rest)
    if settings.telegram_token:
        telegram_webhook.add_route(app, settings=settings, application=TELEGRAM)
    else:
        log.info("Telegram bot off: AIRGATE_TELEGRAM_TOKEN is not set")
    return app


def build_ops_app(settings: Settings, main: web.Application) -> web.Application:
    """Health and metrics on their own listener (AIRGATE_OPS_PORT), for ``main``'s resources."""
    app = web.Application(handler_args=handler_args(settings))
    ops.add_routes(app, main=main, ready_timeout_s=settings.ready_timeout_s)
    return app


LINGER_S = 2.0  # 64 KiB arrives in far less on any link a gateway uses


def handler_args(settings: Settings) -> dict[str, float]:
    """How aiohttp keeps connections. aiohttp has no timeout for reading a request's head, but
    its keep-alive timer runs from a connection's start and after each response, and closes the
    connection if no whole request head has arrived by then: with it at the header timeout, a
    client dribbling its headers (or idle) is closed after AIRGATE_HTTP_HEADER_TIMEOUT_S. A body
    left unread (a request refused before it was read, a body past the limit) is read and dropped
    for at most LINGER_S, so a client still sending gets the answer rather than a reset, and a
    dribbler is let go soon after (aiohttp's default is 10 s)."""
    return {"keepalive_timeout": settings.http_header_timeout_s, "lingering_time": LINGER_S}


def body_within(timeout_s: float) -> Middleware:
    """Read each request's body whole within ``timeout_s`` before its handler runs (aiohttp keeps
    it for ``request.post()`` and ``request.json()``); a slower one is 408 and the connection is
    closed. A body past AIRGATE_HTTP_MAX_BODY_BYTES is marked, not read, for its route to
    answer."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.body_exists:
            return await handler(request)
        try:
            async with asyncio.timeout(timeout_s):
                if request.content_type.startswith("multipart/"):
                    # Read from the stream by request.post() itself, never kept whole: the
                    # handler as a whole has the time (no gateway or Telegram sends one).
                    return await handler(request)
                await request.read()
        except TimeoutError:
            response = web.Response(status=408, text="request timeout: the body was too slow")
            response.force_close()
            return response
        except web.HTTPRequestEntityTooLarge:
            # The route says how (a USSD caller gets a polite END): ussd/gateway.py.
            request[BODY_TOO_LARGE] = True
        return await handler(request)

    return middleware


def job_queue(settings: Settings, redis: Client) -> JobQueue:
    """The process's job queue: on AIRGATE_QUEUE_REDIS_URL's server if set (not connected yet:
    serve starts while it is away, and /health says so), else on ``redis``."""
    if settings.queue_redis_url:
        return JobQueue(queue_client(settings.queue_redis_url, Timeouts.of(settings)))
    return _queue_on(redis)


def _queue_on(redis: Client) -> JobQueue:
    # Settings refuse a cluster without a queue of its own: arq cannot run on one.
    assert isinstance(redis, aioredis.Redis), "the job queue needs a plain or Sentinel Redis"
    return JobQueue.on_pool(redis.connection_pool)


def conversation_engine(
    core: Core,
    redis: Client,
    channels: tuple[Channel, ...] = CHANNELS,
    *,
    queue: JobQueue | None = None,
) -> Engine:
    """The one engine of a process: sessions on ``redis``, jobs on ``queue`` (default: on
    ``redis`` too), every role's flow, for the declared ``channels`` (each session's TTL is its
    channel's)."""
    ttl_s = {channel.name: channel.session_ttl_s(core.settings) for channel in channels}
    queue = queue or _queue_on(redis)
    flows = {**FLOWS, LINK: LINK_FLOW}
    store = SessionStore(
        redis,
        ttl_s=ttl_s,
        ref_key=core.pins.subkey(REF_KEY_PURPOSE),
        journeys=journeys_of(flows.values()),
    )
    return Engine(core=core, store=store, queue=queue, flows=flows, channels=channels)


async def _start_bot(
    stack: AsyncExitStack, settings: Settings, engine: Engine, redis: Client
) -> Application:  # type: ignore[type-arg]
    """The bot's application, initialised (getMe), and registered as the webhook when a public
    URL is configured."""
    application = TelegramChannel(engine=engine, redis=redis, settings=settings).build()
    try:
        await application.initialize()
    except TelegramError:
        # PTB leaves its requests' sessions open when getMe fails: closed now, not at exit.
        await asyncio.gather(*(r.shutdown() for r in application.bot._request))  # noqa: SLF001
        raise
    stack.push_async_callback(application.shutdown)
    if settings.telegram_webhook_url:
        await application.bot.set_webhook(
            settings.telegram_webhook_url,
            secret_token=telegram_webhook.webhook_secret(settings),
            allowed_updates=ALLOWED_UPDATES,
        )
    return application
