"""Top-ups end to end: confirmed top-ups/s from request to final state, through real workers.

On PostgreSQL and Redis, with ``airgate sandbox`` and ``airgate worker`` as their own processes:
``--clients`` asyncio tasks in this process confirm ``--topups`` top-ups (guards, reserve, record,
enqueue: what a channel does after the PIN), each for its own retailers, while the workers deliver
them to the sandbox, capture the stock and send two SMS each (retailer, customer) to the sandbox's
sink. Once per sandbox latency (``--latencies``, ms added to every top-up answer).

Reported:
- closed loop: ``--clients`` tasks each sending its next request when the last one answered, as fast
  as they can: requests/s and delivered/s = top-ups / (last final_at - first created_at); p50/p99
  here are mostly queueing (32 in flight / throughput);
- open loop: ``--rate`` requests/s offered for ``--open-topups`` requests, each timed from its due
  time, so a slow answer cannot hide the ones queued behind it: the request latency at that load;
- CPU ms per top-up of each process kind and of the whole machine (/proc).
After each run the ledger is verified and the sandbox's delivered count must equal ours.

Run:  .venv/bin/python bench/topups.py [--topups 8000] [--clients 32] [--workers 1]
      [--latencies 0,200] [--max-jobs 256] [--rate 500] [--open-topups 3000]
      [--pg /var/run/postgresql | postgresql://postgres@127.0.0.1:5432]
      [--redis redis://127.0.0.1:6379/0 | embedded] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sys
import tempfile
import time
from asyncio.subprocess import DEVNULL, Process
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select
from sqlmodel import col

from core.context import Core, open_core
from core.db import upgrade
from core.jobs.queue import JobQueue
from core.models import Party, Role, Topup, TopupState
from core.redis import ensure_embedded, stop_embedded
from core.services.seed import seed_demo
from core.services.topups import confirm_topup
from core.services.verify import verify_ledger
from core.settings import Settings, load_settings

from _common import (  # isort: skip (bench/, the script's own folder)
    BENCH_POOL,
    AIRGATE,
    PEPPER,
    add_server_flags,
    cpu_s,
    flush_redis,
    free_port,
    machine_busy_s,
    note_load,
    pct,
    pg_url,
    pids_named,
    recreate_database,
    stop,
    wait_http,
)

BENCH_DB = "airgate_bench_topups"


@dataclass
class Row:
    latency_ms: int
    topups: int
    clients: int
    workers: int
    max_jobs: int
    request_per_s: float
    request_p50_ms: float
    request_p99_ms: float
    open_rate: int  # requests/s offered in the open-loop phase
    open_p50_ms: float
    open_p99_ms: float
    delivered_per_s: float
    delivered: int
    failed: int
    seconds: float
    # CPU ms per top-up, by process kind, over the whole run.
    cpu_ms: dict[str, float]


async def start(*args: str, env: dict[str, str]) -> Process:
    return await asyncio.create_subprocess_exec(
        AIRGATE, *args, env=env, stdout=DEVNULL, stderr=DEVNULL
    )


async def one_run(
    core: Core, settings: Settings, args: argparse.Namespace, latency_ms: int, shops: list[int]
) -> Row:
    sandbox_port = free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRGATE_")}
    env.update(
        AIRGATE_DATABASE_URL=settings.database_url,
        AIRGATE_REDIS_URL=settings.redis_url,
        AIRGATE_VAR_DIR=str(settings.var_dir),
        AIRGATE_PIN_PEPPER=PEPPER,
        AIRGATE_PROVIDER_URL=sandbox_url,
        AIRGATE_PROVIDER_AUTH_URL=sandbox_url,
        AIRGATE_SMS_URL=sandbox_url,
        AIRGATE_WORKER_MAX_JOBS=str(args.max_jobs),
        AIRGATE_LOG_LEVEL="WARNING",
        **BENCH_POOL,
    )
    await flush_redis(settings.redis_url)
    sandbox = await start(
        "sandbox",
        "--port",
        str(sandbox_port),
        "--latency-ms",
        str(latency_ms),
        "--no-digit-rules",
        env=env,
    )
    procs = [sandbox]
    try:
        await wait_http(f"{sandbox_url}/sandbox/stats", sandbox, timeout_s=15)
        procs += [await start("worker", env=env) for _ in range(args.workers)]
        await asyncio.sleep(2)  # let the workers connect before the clock starts
        queue = await JobQueue.connect(settings.redis_url)
        latencies: list[float] = []
        rng = random.Random(latency_ms)
        per_client = args.topups // args.clients

        async def make_request(shop: int) -> None:
            await confirm_topup(
                core,
                queue,
                party_id=shop,
                msisdn=f"07{rng.choice('12')}{rng.randrange(10**7):07d}",  # Safaricom
                amount_minor=rng.randrange(10, 60) * 100,
                channel="bench",
            )

        async def client(index: int) -> None:
            mine = shops[index :: args.clients]
            for n in range(per_client):
                t0 = time.perf_counter()
                await make_request(mine[n % len(mine)])
                latencies.append(time.perf_counter() - t0)

        groups = {
            "bench (requests)": [os.getpid()],
            "workers": [p.pid for p in procs[1:]],
            "sandbox": [sandbox.pid],
            "postgres": pids_named("postgres"),
            "redis": pids_named("redis-server"),
        }
        cpu0 = {name: {pid: cpu_s([pid]) for pid in pids} for name, pids in groups.items()}
        busy0 = machine_busy_s()
        t0 = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(args.clients)))
        request_s = time.perf_counter() - t0
        total = per_client * args.clients
        finals = await wait_final(core, total, timeout_s=args.timeout)
        groups["postgres"] = pids_named("postgres")  # backends the workers opened since
        cpu = {
            name: sum(cpu_s([pid]) - cpu0[name].get(pid, 0.0) for pid in pids) * 1000 / total
            for name, pids in groups.items()
        }
        cpu["machine"] = (machine_busy_s() - busy0) * 1000 / total
        async with core.sessions() as session:
            first, last = (
                await session.execute(
                    select(func.min(Topup.created_at), func.max(Topup.final_at)).where(
                        col(Topup.channel) == "bench"
                    )
                )
            ).one()
        seconds = (last - first).total_seconds()
        # Latency at a steady offered rate, from each request's due time (no coordinated
        # omission), while the workers deliver them.
        opened = await open_loop(args.rate, args.open_topups, shops, make_request)
        finals = await wait_final(core, total + args.open_topups, timeout_s=args.timeout)
        await queue.close()
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{sandbox_url}/sandbox/stats") as resp,
        ):
            stats = await resp.json()
        if stats["delivered"] != finals[TopupState.DELIVERED]:
            raise SystemExit(f"sandbox delivered {stats['delivered']}, we say {finals}")
        async with core.sessions() as session:
            report = await verify_ledger(session)
        if not report.ok:
            raise SystemExit(f"ledger verify failed: {report.problems[:5]}")
        return Row(
            latency_ms=latency_ms,
            topups=total,
            clients=args.clients,
            workers=args.workers,
            max_jobs=args.max_jobs,
            request_per_s=total / request_s,
            request_p50_ms=pct(latencies, 0.50),
            request_p99_ms=pct(latencies, 0.99),
            open_rate=args.rate,
            open_p50_ms=pct(opened, 0.50),
            open_p99_ms=pct(opened, 0.99),
            delivered_per_s=total / seconds,
            delivered=finals[TopupState.DELIVERED],
            failed=finals[TopupState.FAILED],
            seconds=seconds,
            cpu_ms=cpu,
        )
    finally:
        await stop(procs, timeout_s=20)


async def open_loop(
    rate: int, count: int, shops: list[int], request: Callable[[int], Awaitable[None]]
) -> list[float]:
    """``count`` requests at ``rate``/s whatever their latency; each timed from its due time.
    The first second is warm-up (pools, caches after the closed-loop phase) and not counted."""
    latencies: list[float] = []

    async def one(shop: int, due: float) -> None:
        await request(shop)
        if due - start >= 1.0:
            latencies.append(time.perf_counter() - due)

    tasks = []
    start = time.perf_counter()
    for i in range(count):
        due = start + i / rate
        if (wait := due - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one(shops[i % len(shops)], due)))
    await asyncio.gather(*tasks)
    return latencies


async def wait_final(core: Core, total: int, *, timeout_s: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    while True:
        async with core.sessions() as session:
            rows = await session.execute(
                select(col(Topup.state), func.count())
                .where(col(Topup.channel) == "bench")
                .group_by(col(Topup.state))
            )
            counts = {state: n for state, n in rows}
        final = counts.get(TopupState.DELIVERED, 0) + counts.get(TopupState.FAILED, 0)
        if final >= total:
            return {TopupState.DELIVERED: 0, TopupState.FAILED: 0, **counts}
        if time.monotonic() > deadline:
            raise SystemExit(f"only {final}/{total} final after {timeout_s} s: {counts}")
        await asyncio.sleep(0.2)


async def bench(args: argparse.Namespace) -> list[Row]:
    rows = []
    await recreate_database(args.pg, BENCH_DB)
    with tempfile.TemporaryDirectory(prefix="ag-bench-") as tmp:
        redis_url = args.redis
        if redis_url == "embedded":
            redis_url, _ = await ensure_embedded(Path(tmp))
        settings = load_settings(
            database_url=pg_url(args.pg, BENCH_DB),
            redis_url=redis_url,
            var_dir=Path(tmp),
            pin_pepper=PEPPER,
            topup_daily_limit_minor=10**12,
        )
        async with open_core(settings) as core:
            await upgrade(core.engine)
            await seed_demo(core, retailers=args.retailers)
            gc.freeze()  # what a long-running server does after start-up: a lighter full GC
            async with core.sessions() as session:
                shops = list(
                    (
                        await session.execute(
                            select(col(Party.id)).where(col(Party.role) == Role.RETAILER)
                        )
                    ).scalars()
                )
            for latency in args.latencies:
                rows.append(await one_run(core, settings, args, latency, [int(s) for s in shops]))
                async with core.transaction() as session:
                    await session.execute(
                        Topup.__table__.update()
                        .where(col(Topup.channel) == "bench")
                        .values(channel="bench-done")
                    )
        if args.redis == "embedded":
            await stop_embedded(Path(tmp))
    return rows


def render(rows: list[Row]) -> None:
    table = Table(title="Top-ups: request → delivered through the worker (PostgreSQL, sandbox)")
    for name in ("latency ms", "top-ups", "clients", "workers×jobs", "requests/s",
                 "closed p50/p99 ms", "open-loop", "open p50/p99 ms", "delivered/s", "failed",
                 "seconds"):  # fmt: skip
        table.add_column(name, justify="right")
    for r in rows:
        table.add_row(
            str(r.latency_ms),
            f"{r.topups:,}",
            str(r.clients),
            f"{r.workers}×{r.max_jobs}",
            f"{r.request_per_s:,.0f}",
            f"{r.request_p50_ms:.1f} / {r.request_p99_ms:.1f}",
            f"{r.open_rate}/s",
            f"{r.open_p50_ms:.1f} / {r.open_p99_ms:.1f}",
            f"{r.delivered_per_s:,.0f}",
            str(r.failed),
            f"{r.seconds:.1f}",
        )
    console = Console(width=None if sys.stdout.isatty() else 140)
    console.print(table)
    for r in rows:
        split = ", ".join(f"{name} {ms:.2f}" for name, ms in r.cpu_ms.items())
        console.print(f"CPU ms per top-up at {r.latency_ms} ms: {split}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topups", type=int, default=8000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--retailers", type=int, default=256)
    parser.add_argument("--workers", type=int, default=1, help="airgate worker processes")
    parser.add_argument("--max-jobs", type=int, default=256, help="concurrent jobs per worker")
    parser.add_argument("--latencies", default="0,200", help="sandbox latency per run, ms")
    parser.add_argument("--rate", type=int, default=500, help="open-loop requests/s")
    parser.add_argument("--open-topups", type=int, default=4000, help="open-loop requests")
    parser.add_argument("--timeout", type=float, default=300, help="s to wait for final states")
    add_server_flags(parser, redis_extra=", or 'embedded'")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args.latencies = [int(x) for x in args.latencies.split(",")]
    note_load()
    rows = asyncio.run(bench(args))
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        render(rows)


if __name__ == "__main__":
    main()
