"""What operators probe: ``/healthz`` (alive), ``/readyz`` (ready), ``/health`` (= readyz, kept
for what already probes it) and ``/metrics`` (Prometheus).

Invariant: a probe answers within its own timeout whatever the database and Redis do: ``/healthz``
touches nothing, and ``/readyz`` gives each of them AIRGATE_READY_TIMEOUT_S before it says 503
naming which did not answer. The routes are served with the gateways' or on their own listener
(AIRGATE_OPS_PORT); either way they read the resources of the main application.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterable
from functools import partial

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from core.context import Core
from core.jobs.queue import JobQueue
from core.logging import get_logger
from core.redis import Client
from core.routing import status as routing_status
from core.services.callbacks import outbox

CORE = web.AppKey("core", Core)
REDIS: web.AppKey[Client] = web.AppKey("redis")
QUEUE = web.AppKey("queue", JobQueue)  # on REDIS, or on AIRGATE_QUEUE_REDIS_URL's server
log = get_logger(__name__)

# The aggregator accounts as `airgate provider status` shows them, read from Redis at each scrape
# (every worker records there; this process may never send a top-up itself), and the callback
# backlog read from the database: built afresh for each page, never kept in this process, so they
# are the same whichever `serve` process answers (`serve --processes`, prometheus_client's
# multiprocess mode keeps only what a process counts itself).
BREAKER_VALUE = {"closed": 0, "half_open": 1, "open": 2}


def _gauges() -> dict[str, GaugeMetricFamily]:
    """The scrape-time gauges, empty: name → family."""
    specs = [
        ("airgate_provider_breaker_state",
         "Circuit breaker per account and operator: 0 closed, 1 half-open, 2 open",
         ["account", "operator"]),
        ("airgate_provider_results",
         "Sends per account, operator and result (ok, slow, refused, error, unknown) since "
         "recorded", ["account", "operator", "result"]),
        ("airgate_provider_latency_ms", "Recent send latency (EWMA) per account",
         ["account", "operator"]),
        ("airgate_provider_float_minor", "Last polled balance per account",
         ["account", "currency"]),
        ("airgate_provider_float_low", "1 when the float is under its alert", ["account"]),
        ("airgate_provider_float_read_at_seconds", "When the float was read", ["account"]),
        ("airgate_callback_deliveries",
         "Outcome callbacks pending now (pending) and given up in the last 24 h (given_up_24h)",
         ["state"]),
    ]  # fmt: skip
    return {name: GaugeMetricFamily(name, doc, labels=labels) for name, doc, labels in specs}


class _Families(Collector):
    """A page's worth of families built just now, for one ``generate_latest``."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


def _kept_registry() -> CollectorRegistry:
    """What this process counts (hops, refusals, latencies): under ``serve --processes`` the sum
    over every child, dead ones included, read from PROMETHEUS_MULTIPROC_DIR."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def add_routes(app: web.Application, *, main: web.Application, ready_timeout_s: float) -> None:
    ready = partial(readyz, main=main, timeout_s=ready_timeout_s)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", ready)
    app.router.add_get("/health", ready)
    app.router.add_get("/metrics", partial(metrics, main=main, timeout_s=ready_timeout_s))


async def healthz(_request: web.Request) -> web.Response:
    """The process answers: nothing else is asked. Its pid says which process did, when several
    share the port (``serve --processes``)."""
    return web.json_response({"status": "ok", "pid": os.getpid()})


async def readyz(_request: web.Request, *, main: web.Application, timeout_s: float) -> web.Response:
    """200 when the database and Redis both answer within ``timeout_s``, else 503 naming what
    did not (``"timeout"`` or the error's type; never its text, which may carry a URL)."""

    async def database() -> None:
        async with main[CORE].engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def redis() -> None:
        client = main[REDIS]
        if isinstance(client, RedisCluster):  # every primary: a third of the users is not ready
            await client.ping(target_nodes=RedisCluster.PRIMARIES)
        else:
            await client.ping()

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
    gauges = _gauges()
    try:
        async with asyncio.timeout(timeout_s):
            await _provider_gauges(main, gauges)
    except (TimeoutError, RedisError, OSError) as exc:  # the rest of /metrics still answers
        log.warning("metrics.routing_unreadable", error=type(exc).__name__)
    try:
        async with asyncio.timeout(timeout_s), main[CORE].sessions() as session:
            for state, count in (await outbox.backlog(session)).items():
                gauges["airgate_callback_deliveries"].add_metric([state], count)
    except (TimeoutError, SQLAlchemyError, OSError) as exc:
        log.warning("metrics.callbacks_unreadable", error=type(exc).__name__)
    now = CollectorRegistry()
    now.register(_Families(family for family in gauges.values() if family.samples))
    body = generate_latest(_kept_registry()) + generate_latest(now)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _provider_gauges(main: web.Application, gauges: dict[str, GaugeMetricFamily]) -> None:
    accounts = await routing_status.read(main[CORE].settings, main[REDIS])
    for account in accounts:
        for op in account.operators:
            labels = [account.name, op.operator]
            breaker = BREAKER_VALUE.get(op.breaker, 2)
            gauges["airgate_provider_breaker_state"].add_metric(labels, breaker)
            for result, count in op.counts.items():
                gauges["airgate_provider_results"].add_metric([*labels, result], count)
            if op.latency_ms is not None:
                gauges["airgate_provider_latency_ms"].add_metric(labels, op.latency_ms)
        f = account.float
        if f.balance_minor is not None and f.at_ms is not None:
            gauges["airgate_provider_float_minor"].add_metric(
                [account.name, f.currency], f.balance_minor
            )
            gauges["airgate_provider_float_read_at_seconds"].add_metric(
                [account.name], f.at_ms / 1000
            )
        gauges["airgate_provider_float_low"].add_metric([account.name], int(f.low))
