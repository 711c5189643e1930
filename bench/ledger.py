"""Ledger throughput: reservations/s and captures/s with N concurrent clients.

For each database (PostgreSQL, SQLite) and each client count N, N asyncio tasks call
``Ledger.reserve`` (one transaction each, amount 1, unique ids) for ``--seconds``; then N tasks
capture every reservation made, timed separately. By default each client holds its own retailer;
one extra "hot" row per database has all clients reserving from the SAME retailer. On PostgreSQL
the same run also executes ``pgbench -b tpcb-like`` against the same server with the same client
counts, and reservations/s is reported as a ratio of pgbench's TPS. The ledger is verified after.
"py CPU ms" is this process's CPU time per reservation: near 1000 / (reservations/s), the Python
process is the bottleneck, not the database.

Run:  .venv/bin/python bench/ledger.py [--clients 1,8,32] [--seconds 10] [--only postgres|sqlite]
      [--json] [--pg postgresql://postgres@127.0.0.1:5432] [--scale 10]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import sys
import tempfile
import time
from asyncio.subprocess import PIPE
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlmodel import col

from core.context import Core, open_core
from core.db import upgrade
from core.models import Party
from core.services.seed import retailer_msisdn, seed_demo
from core.services.verify import verify_ledger
from core.settings import load_settings

ASSET = "AIRTIME:safaricom-ke"
BENCH_DB, PGBENCH_DB = "airgate_bench", "airgate_pgbench"
PEPPER = "bench-pepper-0123456789abcdef"


@dataclass
class Row:
    database: str
    workload: str  # "per-retailer" or "hot (1 retailer)"
    clients: int
    reservations: int
    reserve_per_s: float
    reserve_p50_ms: float
    reserve_p99_ms: float
    reserve_cpu_ms: float  # this Python process's CPU time per reservation
    capture_per_s: float
    capture_p50_ms: float
    capture_p99_ms: float
    pgbench_tps: float | None = None
    ratio: float | None = None  # reserve_per_s / pgbench_tps


Baseline = Callable[[int], Awaitable[float]]


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


async def drive(workers: int, step: Callable[[int], Awaitable[bool]]) -> tuple[list[float], float]:
    """Run ``step(worker)`` in a loop on each of N tasks until it returns False."""
    latencies: list[float] = []

    async def worker(index: int) -> None:
        while True:
            t0 = time.perf_counter()
            if not await step(index):
                return
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(workers)))
    return latencies, time.perf_counter() - start


async def measure(
    core: Core, database: str, workload: str, party_ids: list[int], seconds: float
) -> Row:
    """Reserve for ``seconds`` (task i reserves from ``party_ids[i]``), then capture them all."""
    tag, seq = f"{workload[:3]}-{len(party_ids)}-{time.time_ns()}", itertools.count()
    made: list[str] = []
    deadline = time.perf_counter() + seconds

    async def reserve(index: int) -> bool:
        if time.perf_counter() >= deadline:
            return False
        rid = f"{tag}-{next(seq)}"
        async with core.transaction() as session:
            await core.ledger.reserve(
                session, reservation_id=rid, party_id=party_ids[index], asset=ASSET, amount_minor=1
            )
        made.append(rid)
        return True

    async def capture(_: int) -> bool:
        if (rid := next(pending, None)) is None:
            return False
        async with core.transaction() as session:
            await core.ledger.capture(session, reservation_id=rid)
        return True

    cpu0 = time.process_time()
    res_lat, res_s = await drive(len(party_ids), reserve)
    cpu = time.process_time() - cpu0
    pending = iter(made)
    cap_lat, cap_s = await drive(len(party_ids), capture)
    return Row(
        database=database,
        workload=workload,
        clients=len(party_ids),
        reservations=len(made),
        reserve_per_s=len(made) / res_s,
        reserve_p50_ms=pct(res_lat, 0.50),
        reserve_p99_ms=pct(res_lat, 0.99),
        reserve_cpu_ms=cpu * 1000 / max(1, len(made)),
        capture_per_s=len(made) / cap_s,
        capture_p50_ms=pct(cap_lat, 0.50),
        capture_p99_ms=pct(cap_lat, 0.99),
    )


async def retailer_ids(core: Core, count: int) -> list[int]:
    msisdns = [retailer_msisdn(i) for i in range(1, count + 1)]
    async with core.transaction() as session:
        rows = await session.execute(
            select(col(Party.msisdn), col(Party.id)).where(col(Party.msisdn).in_(msisdns))
        )
        by_msisdn = {msisdn: pid for msisdn, pid in rows if pid is not None}
    return [by_msisdn[m] for m in msisdns]


async def bench_database(
    database: str, url: str, args: argparse.Namespace, baseline: Baseline | None
) -> list[Row]:
    """Each point in turn, each followed by its baseline (pgbench) run, then verify the ledger."""
    with tempfile.TemporaryDirectory(prefix="airgate-bench-") as tmp:
        url = url or f"sqlite:///{tmp}/bench.db"
        settings = load_settings(  # the pool the recorded figures were measured with
            database_url=url,
            var_dir=Path(tmp),
            pin_pepper=PEPPER,
            db_pool_size=40,
            db_max_overflow=10,
        )
        async with open_core(settings) as core:
            await upgrade(core.engine)
            most = max(args.clients)
            await seed_demo(core, retailers=most)
            retailers = await retailer_ids(core, most)
            points = [("per-retailer", retailers[:n]) for n in args.clients]
            if args.hot:
                points.append(("hot (1 retailer)", retailers[:1] * most))
            rows: list[Row] = []
            tps: dict[int, float] = {}
            for workload, party_ids in points:
                row = await measure(core, database, workload, party_ids, args.seconds)
                if baseline is not None:
                    if row.clients not in tps:
                        tps[row.clients] = await baseline(row.clients)
                    row.pgbench_tps = tps[row.clients]
                    row.ratio = row.reserve_per_s / row.pgbench_tps
                rows.append(row)
            async with core.transaction() as session:
                report = await verify_ledger(session)
            if not report.ok:
                raise SystemExit(f"{database}: ledger verify failed: {report.problems[:5]}")
    return rows


async def recreate(server: str, name: str) -> None:
    conn = await asyncpg.connect(f"{server}/test")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def run(*cmd: str) -> str:
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=PIPE, stderr=PIPE)
    out, err = await proc.communicate()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err.decode()}")
    return out.decode()


def pg_args(server: str) -> list[str]:
    url = urlsplit(server)
    host, port, user = url.hostname or "127.0.0.1", str(url.port or 5432), url.username
    return ["-h", host, "-p", port, "-U", user or "postgres"]


async def bench_postgres(args: argparse.Namespace) -> list[Row]:
    pg = pg_args(args.pg)
    for name in (BENCH_DB, PGBENCH_DB):
        await recreate(args.pg, name)
    await run("pgbench", *pg, "-i", "-q", "-s", str(args.scale), PGBENCH_DB)

    async def pgbench(n: int) -> float:
        out = await run(
            *("pgbench", *pg, "-b", "tpcb-like", "-n", "-c", str(n), "-j", str(min(2, n))),
            *("-T", str(max(1, round(args.seconds))), PGBENCH_DB),
        )
        found = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
        if not found:
            raise SystemExit(f"no tps in pgbench output:\n{out}")
        return float(found[1])

    return await bench_database("postgres", f"{args.pg}/{BENCH_DB}", args, pgbench)


def render(rows: list[Row]) -> None:
    table = Table(title="Ledger: reserve / capture, one transaction each (py CPU: per reserve)")
    for name in ("db", "workload", "clients", "reserve/s", "p50/p99 ms", "py CPU ms",
                 "capture/s", "p50/p99 ms", "pgbench TPS", "ratio"):  # fmt: skip
        table.add_column(name, justify="left" if name in ("db", "workload") else "right")
    for r in rows:
        table.add_row(
            r.database,
            r.workload,
            str(r.clients),
            f"{r.reserve_per_s:,.0f}",
            f"{r.reserve_p50_ms:.1f} / {r.reserve_p99_ms:.1f}",
            f"{r.reserve_cpu_ms:.2f}",
            f"{r.capture_per_s:,.0f}",
            f"{r.capture_p50_ms:.1f} / {r.capture_p99_ms:.1f}",
            "-" if r.pgbench_tps is None else f"{r.pgbench_tps:,.0f}",
            "-" if r.ratio is None else f"{r.ratio:.2f}",
        )
    Console(width=None if sys.stdout.isatty() else 140).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,8,32", help="comma-separated, ≤ 40 (pool size)")
    parser.add_argument("--seconds", type=float, default=10.0, help="reserve phase per point")
    parser.add_argument("--only", choices=["postgres", "sqlite"])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432", help="server URL")
    parser.add_argument("--scale", type=int, default=10, help="pgbench -i scale factor")
    parser.add_argument("--no-hot", dest="hot", action="store_false", help="skip the hot row")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    args.clients = sorted({int(c) for c in args.clients.split(",")})
    if (load := os.getloadavg()[0]) > 0.5:
        print(f"note: load average {load:.2f} at start; is something else busy?", file=sys.stderr)
    rows: list[Row] = []
    if args.only in (None, "postgres"):
        rows += asyncio.run(bench_postgres(args))
    if args.only in (None, "sqlite"):
        rows += asyncio.run(bench_database("sqlite", "", args, None))
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        render(rows)


if __name__ == "__main__":
    main()
