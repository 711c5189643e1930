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
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Gauge, generate_latest
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from core.context import Core
from core.jobs.queue import JobQueue
from core.logging import get_logger
from core.routing import status as routing_status
from core.services.callbacks import outbox

CORE = web.AppKey("core", Core)
REDIS = web.AppKey("redis", aioredis.Redis)
QUEUE = web.AppKey("queue", JobQueue)  # on REDIS, or on AIRGATE_QUEUE_REDIS_URL's server
log = get_logger(__name__)

# The aggregator accounts as `airgate provider status` shows them, read from Redis at each scrape
# (every worker records there; this process may never send a top-up itself).
BREAKER_VALUE = {"closed": 0, "half_open": 1, "open": 2}
BREAKER = Gauge(
    "airgate_provider_breaker_state",
    "Circuit breaker per account and operator: 0 closed, 1 half-open, 2 open",
    ["account", "operator"],
)
RESULTS = Gauge(
    "airgate_provider_results",
    "Sends per account, operator and result (ok, slow, refused, error, unknown) since recorded",
    ["account", "operator", "result"],
)
LATENCY = Gauge(
    "airgate_provider_latency_ms", "Recent send latency (EWMA) per account", ["account", "operator"]
)
FLOAT = Gauge(
    "airgate_provider_float_minor", "Last polled balance per account", ["account", "currency"]
)
FLOAT_LOW = Gauge("airgate_provider_float_low", "1 when the float is under its alert", ["account"])
FLOAT_AT = Gauge("airgate_provider_float_read_at_seconds", "When the float was read", ["account"])
CALLBACKS = Gauge(
    "airgate_callback_deliveries",
    "Outcome callbacks pending now (pending) and given up in the last 24 h (given_up_24h)",
    ["state"],
)


def add_routes(app: web.Application, *, main: web.Application, ready_timeout_s: float) -> None:
    ready = partial(readyz, main=main, timeout_s=ready_timeout_s)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", ready)
    app.router.add_get("/health", ready)
    app.router.add_get("/metrics", partial(metrics, main=main, timeout_s=ready_timeout_s))


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


async def metrics(
    _request: web.Request, *, main: web.Application, timeout_s: float
) -> web.Response:
    try:
        async with asyncio.timeout(timeout_s):
            await _provider_gauges(main)
    except (TimeoutError, RedisError, OSError) as exc:  # the rest of /metrics still answers
        log.warning("metrics.routing_unreadable", error=type(exc).__name__)
    try:
        async with asyncio.timeout(timeout_s), main[CORE].sessions() as session:
            for state, count in (await outbox.backlog(session)).items():
                CALLBACKS.labels(state).set(count)
    except (TimeoutError, SQLAlchemyError, OSError) as exc:
        log.warning("metrics.callbacks_unreadable", error=type(exc).__name__)
    body = generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _provider_gauges(main: web.Application) -> None:
    accounts = await routing_status.read(main[CORE].settings, main[REDIS])
    for gauge in (BREAKER, RESULTS, LATENCY, FLOAT, FLOAT_LOW, FLOAT_AT):
        gauge.clear()  # an account or operator no longer configured leaves the page
    for account in accounts:
        for op in account.operators:
            BREAKER.labels(account.name, op.operator).set(BREAKER_VALUE.get(op.breaker, 2))
            for result, count in op.counts.items():
                RESULTS.labels(account.name, op.operator, result).set(count)
            if op.latency_ms is not None:
                LATENCY.labels(account.name, op.operator).set(op.latency_ms)
        f = account.float
        if f.balance_minor is not None and f.at_ms is not None:
            FLOAT.labels(account.name, f.currency).set(f.balance_minor)
            FLOAT_AT.labels(account.name).set(f.at_ms / 1000)
        FLOAT_LOW.labels(account.name).set(int(f.low))
