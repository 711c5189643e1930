"""POST /api/v1/topups: accepted top-ups/s and p99 with 32 concurrent clients on PostgreSQL, against
the same request path without the HTTP layer (the service call alone, ``confirm_topup``).

Two phases on one seeded PostgreSQL database and one Redis, alternated ``--rounds`` times so that a
shared machine's load falls on both alike:
- service: ``--clients`` asyncio tasks in this process call ``confirm_topup`` (guards, reserve,
  record, enqueue) as fast as each gets an answer, each with a client key as the API passes;
- http: a real ``airgate serve`` process; ``--clients`` aiohttp tasks here POST the same top-ups
  with a key per retailer and a fresh Idempotency-Key each (auth lookup, rate limit, validation,
  idempotency claim and store in Redis, the same service call, the JSON answer).
No worker runs: a top-up is *accepted* once reserved, recorded and enqueued (202).

Then the HTTP phase's requests are sent again as they were: each is answered from its stored
response (``Idempotent-Replayed``), which is the HTTP layer alone (key, rate, validation,
idempotency, the answer) in the same process under the same client ("http replay").

Reported per phase: accepted/s, p50/p99 (ms), CPU ms per top-up of the process doing the work
(this one for the service phase, ``serve`` for the HTTP phases). The HTTP layer's share of the
total: 1 - service/http, by time per top-up (1/throughput) and by CPU per top-up; and replay CPU
/ top-up CPU within serve (not skewed by the client sharing the machine). Target ≤ 1/3.

Run:  .venv/bin/python bench/api_topups.py [--topups 3000] [--clients 32] [--rounds 2]
      [--retailers 200] [--pg /var/run/postgresql | postgresql://postgres@127.0.0.1:5432]
      [--redis redis://127.0.0.1:6379/0] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
import uuid
from asyncio.subprocess import DEVNULL
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlmodel import col

from core.context import open_core
from core.db import upgrade
from core.jobs.queue import JobQueue
from core.models import Party, Role, Scope
from core.services import apikeys
from core.services.audit import Actor
from core.services.seed import seed_demo
from core.services.topups import confirm_topup
from core.settings import Settings, load_settings

from _common import (  # isort: skip (bench/, the script's own folder)
    AIRGATE,
    PEPPER,
    add_server_flags,
    cpu_s,
    flush_redis,
    free_port,
    note_load,
    pct,
    pg_url,
    recreate_database,
    stop,
    wait_http,
)

BENCH_DB = "airgate_bench_api"
# PostgreSQL's 100 connections are shared (other benchmarks, test runs): one pool of this size
# at a time, the service phase's in this process or serve's.
POOL = {"db_pool_size": 24, "db_max_overflow": 0, "db_lookup_connections": 4}
WARMUP = 100


@dataclass
class Row:
    phase: str
    round: int
    topups: int
    accepted_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float  # per top-up, of the process doing the work
    client_cpu_ms: float  # per top-up, of this process as the HTTP client (0 for the service)
    refused: int


class Requests:
    """The same stream of top-ups for both phases: random Safaricom numbers, 10 to 59 KES."""

    def __init__(self, shops: list[int], seed: int) -> None:
        self.shops = shops
        self.rng = random.Random(seed)
        self.n = 0

    def next(self) -> tuple[int, str, int]:
        self.n += 1
        shop = self.shops[self.n % len(self.shops)]
        number = f"07{self.rng.choice('12')}{self.rng.randrange(10**7):07d}"
        return shop, number, self.rng.randrange(10, 60) * 100


async def closed_loop(
    total: int, clients: int, one: Callable[[], Awaitable[bool]]
) -> tuple[float, list[float], int]:
    """``clients`` tasks, each sending its next request when the last one answered."""
    latencies: list[float] = []
    refused = 0
    left = total

    async def client() -> None:
        nonlocal left, refused
        while left > 0:
            left -= 1
            t0 = time.perf_counter()
            ok = await one()
            latencies.append(time.perf_counter() - t0)
            refused += not ok

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - start, latencies, refused


async def service_phase(settings: Settings, stream: Requests, args: argparse.Namespace) -> Row:
    async with open_core(settings.model_copy(update=POOL)) as core:
        queue = await JobQueue.connect(settings.redis_url)
        try:

            async def one() -> bool:
                shop, number, amount = stream.next()
                await confirm_topup(
                    core,
                    queue,
                    party_id=shop,
                    msisdn=number,
                    amount_minor=amount,
                    channel="api",
                    client_key=f"api:{shop}:{uuid.uuid4().hex}",  # as the API passes its key
                )
                return True

            await closed_loop(WARMUP, args.clients, one)
            cpu0 = time.process_time()
            seconds, latencies, refused = await closed_loop(args.topups, args.clients, one)
            cpu = time.process_time() - cpu0
        finally:
            await queue.close()
    return Row(
        "service",
        0,
        args.topups,
        args.topups / seconds,
        pct(latencies, 0.5),
        pct(latencies, 0.99),
        cpu * 1000 / args.topups,
        0.0,
        refused,
    )


async def http_phase(
    settings: Settings, stream: Requests, keys: dict[int, str], args: argparse.Namespace
) -> list[Row]:
    """The top-ups through ``serve``; then the same requests again (same keys and bodies):
    each is answered from its stored response, so that phase is the HTTP layer alone (key,
    rate, validation, idempotency, the answer), measured in the same process under the same
    client."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRGATE_")}
    env.update(
        AIRGATE_DATABASE_URL=settings.database_url,
        AIRGATE_REDIS_URL=settings.redis_url,
        AIRGATE_VAR_DIR=str(settings.var_dir),
        AIRGATE_PIN_PEPPER=PEPPER,
        AIRGATE_HTTP_PORT=str(port),
        AIRGATE_LOG_LEVEL="WARNING",
        AIRGATE_API_RATE_PER_S="10000",
        AIRGATE_API_BURST="100000",
        AIRGATE_TOPUP_DAILY_LIMIT_MINOR=str(10**12),
        **{f"AIRGATE_{k.upper()}": str(v) for k, v in POOL.items()},
    )
    serve = await asyncio.create_subprocess_exec(
        AIRGATE, "serve", env=env, stdout=DEVNULL, stderr=DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    sent: list[tuple[dict[str, str], dict[str, object]]] = []
    rows = []
    try:
        await wait_http(f"{base}/healthz", serve, timeout_s=60)
        connector = aiohttp.TCPConnector(limit=args.clients)
        async with aiohttp.ClientSession(connector=connector) as http:

            async def post(headers: dict[str, str], body: dict[str, object]) -> bool:
                async with http.post(f"{base}/api/v1/topups", json=body, headers=headers) as r:
                    await r.read()
                    return r.status == 202

            async def one() -> bool:
                shop, number, amount = stream.next()
                headers = {
                    "Authorization": f"Bearer {keys[shop]}",
                    "Idempotency-Key": uuid.uuid4().hex,
                }
                body: dict[str, object] = {"msisdn": number, "amount_minor": amount}
                sent.append((headers, body))
                return await post(headers, body)

            async def again() -> bool:
                headers, body = sent.pop()
                return await post(headers, body)

            await closed_loop(WARMUP, args.clients, one)
            for phase, call in (("http", one), ("http replay", again)):
                cpu0, client0 = cpu_s([serve.pid]), time.process_time()
                seconds, latencies, refused = await closed_loop(args.topups, args.clients, call)
                cpu, client = cpu_s([serve.pid]) - cpu0, time.process_time() - client0
                rows.append(
                    Row(
                        phase,
                        0,
                        args.topups,
                        args.topups / seconds,
                        pct(latencies, 0.5),
                        pct(latencies, 0.99),
                        cpu * 1000 / args.topups,
                        client * 1000 / args.topups,
                        refused,
                    )
                )
    finally:
        await stop([serve])
    return rows


async def bench(args: argparse.Namespace) -> list[Row]:
    await recreate_database(args.pg, BENCH_DB)
    await flush_redis(args.redis)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="ag-bench-api-") as tmp:
        settings = load_settings(
            database_url=pg_url(args.pg, BENCH_DB),
            redis_url=args.redis,
            var_dir=Path(tmp),
            pin_pepper=PEPPER,
            topup_daily_limit_minor=10**12,
            db_pool_size=2,
            db_max_overflow=0,
            db_lookup_connections=0,
        )
        async with open_core(settings) as core:
            await upgrade(core.engine)
            await seed_demo(core, retailers=args.retailers)
            async with core.sessions() as session:
                query = select(col(Party.id)).where(col(Party.role) == Role.RETAILER)
                shops = [int(s) for s in (await session.execute(query)).scalars()]
            keys = {}
            for shop in shops:
                made = await apikeys.create(
                    core, actor=Actor.cli(), party_ref=shop, scopes=[Scope.TOPUP]
                )
                keys[shop] = made.key
        for n in range(1, args.rounds + 1):
            for phase in ("service", "http"):
                stream = Requests(shops, seed=n * 2 + (phase == "http"))
                done = (
                    [await service_phase(settings, stream, args)]
                    if phase == "service"
                    else await http_phase(settings, stream, keys, args)
                )
                for row in done:
                    row.round = n
                    rows.append(row)
                    print(f"round {n} {row.phase}: {row.accepted_per_s:.0f}/s", file=sys.stderr)
    return rows


def share(rows: list[Row]) -> tuple[float, float, float]:
    """The HTTP layer's share of the total per top-up: by time (1/throughput) and by CPU against
    the service alone, and by CPU within serve (a replayed request is the HTTP layer alone)."""

    def mean(phase: str, field: str) -> float:
        found = [getattr(r, field) for r in rows if r.phase == phase]
        return sum(found) / len(found)

    by_time = 1 - mean("http", "accepted_per_s") / mean("service", "accepted_per_s")
    by_cpu = 1 - mean("service", "cpu_ms") / mean("http", "cpu_ms")
    within = mean("http replay", "cpu_ms") / mean("http", "cpu_ms")
    return by_time, by_cpu, within


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topups", type=int, default=3000, help="per phase and round")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--retailers", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    add_server_flags(parser)
    args = parser.parse_args()
    note_load()
    rows = asyncio.run(bench(args))
    by_time, by_cpu, within = share(rows)
    if args.json:
        print(
            json.dumps(
                {
                    "rows": [asdict(r) for r in rows],
                    "http_share_time": by_time,
                    "http_share_cpu": by_cpu,
                    "http_share_cpu_within_serve": within,
                },
                indent=2,
            )
        )
        return
    table = Table(
        "phase",
        "round",
        "top-ups",
        "accepted/s",
        "p50 ms",
        "p99 ms",
        "CPU ms/top-up",
        "client CPU ms",
        "refused",
    )
    for r in rows:
        table.add_row(
            r.phase,
            str(r.round),
            f"{r.topups:,}",
            f"{r.accepted_per_s:,.0f}",
            f"{r.p50_ms:.1f}",
            f"{r.p99_ms:.1f}",
            f"{r.cpu_ms:.2f}",
            f"{r.client_cpu_ms:.2f}",
            str(r.refused),
        )
    console = Console()
    console.print(table)
    console.print(
        f"HTTP layer's share per top-up (target ≤ 33%): against the service alone, {by_time:.0%}"
        f" of the time and {by_cpu:.0%} of the CPU; within serve (replays / top-ups), "
        f"{within:.0%} of the CPU"
    )


if __name__ == "__main__":
    main()
