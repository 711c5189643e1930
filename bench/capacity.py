"""Capacity: what one ``serve`` and one ``worker`` process carry, and what each one costs.

The figures the capacity model of docs/OPERATIONS.md is computed from, measured on real processes
(PostgreSQL over TCP, its own database on a shared server; a private ``redis-server`` on a free
port unless ``--redis`` names one, so that ``used_memory`` deltas are ours alone), with the
production defaults for pools (AIRGATE_DB_*: 10 + 5 pooled, 4 lookup connections):

1. **serve**: one ``airgate serve``; the USSD journey of bench/ussd_journey.py (``--sessions``
   keep-alive clients, the cancelled airtime journey, 5 hops) for ``--seconds``: hops/s, and the
   server's own CPU per hop (/proc utime + stime ÷ hops), hence **hops/s per core** = 10⁶ ÷ µs.
   Then ``--live`` sessions left at the confirm screen: **Redis bytes per live session**.
2. **confirms**: ``--topups`` top-ups confirmed in this process (``confirm_topup``, what ``serve``
   does after the PIN: guards, reserve, record, enqueue) with no worker running: this process's
   CPU per confirm, and **Redis bytes per queued job** (``used_memory`` grown ÷ jobs queued,
   and ``MEMORY USAGE`` of the job keys).
3. **workers**: ``airgate sandbox`` and 1, then 2, ``airgate worker`` (``--workers``) draining
   that backlog: **top-ups delivered/s** (first to last ``final_at``) and the workers' CPU per
   top-up (delivery, capture, two SMS), hence top-ups/s per worker core. A run per sandbox
   latency in ``--latencies`` (ms): with a slow aggregator a worker is bound by its
   ``AIRGATE_WORKER_MAX_JOBS`` in flight (Little's law), not by CPU.
4. **PostgreSQL connections** of each process, idle and the most seen under load (sampled every
   0.25 s): ``pg_stat_activity`` rows of the database whose ``client_port`` is a socket the
   process holds (/proc/<pid>/fd → /proc/net/tcp), so this script's own connections are not
   counted. Hence TCP: ``--pg`` must be a URL, not a socket directory.
5. **RSS** (/proc/<pid>/status VmRSS, and VmHWM: the peak) of serve and of each worker.
6. **Disk per top-up**: ``pg_total_relation_size`` of every table (heap, indexes, TOAST) before
   the first backlog is confirmed and after it is delivered (SMS sent), ÷ top-ups, both after
   ``VACUUM FULL`` ("packed": the live rows, what a day adds for good) and, "as left", with the
   dead row versions of the updates not yet vacuumed (what autovacuum then makes reusable).

Each run checks itself: every top-up final, the sandbox's delivered count equal to ours, the
ledger verified; the script exits otherwise. ``uptime``'s load is recorded before and after each
phase: on a shared machine the rates are disturbed, the CPU per unit much less.

Prints tables, then one JSON line (everything above).

Run:  .venv/bin/python bench/capacity.py [--sessions 32] [--seconds 15] [--warmup 3] [--live 300]
      [--retailers 300] [--topups 3000] [--workers 1,2] [--latencies 0] [--max-jobs 256]
      [--pg postgresql://postgres@127.0.0.1:5432] [--redis private | redis://…/N (flushed)]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from asyncio.subprocess import DEVNULL, Process
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass, field
from math import ceil
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import redis.asyncio as aioredis
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select
from sqlmodel import col

from _common import (  # isort: skip (bench/, the script's own folder)
    AIRGATE,
    PEPPER,
    cpu_s,
    flush_redis,
    free_port,
    machine_busy_s,
    note_load,
    pg_url,
    recreate_database,
    stop,
    wait_http,
)
import ussd_journey  # isort: skip

BENCH_DB = "airgate_bench_capacity"
PG_TCP = "postgresql://postgres@127.0.0.1:5432"
CHANNEL = "capacity"


# -- what is measured ---------------------------------------------------------------------------


@dataclass
class Footprint:
    """One process: PostgreSQL connections and memory, idle and under load."""

    pid: int
    conns_idle_before: int = 0
    conns_peak: int = 0  # most seen at once under load
    conns_active_peak: int = 0  # of which running a statement (not idle)
    conns_idle_after: int = 0
    rss_idle_mb: float = 0.0
    rss_after_mb: float = 0.0
    rss_peak_mb: float = 0.0  # VmHWM


@dataclass
class ServeRun:
    sessions: int
    seconds: float
    hops: int
    errors: int
    hops_per_s: float
    p50_ms: float
    p99_ms: float
    server_cpu_us_per_hop: float
    hops_per_s_per_core: float
    machine_busy_cores: float
    footprint: Footprint
    live_sessions: int = 0
    redis_bytes_per_live_session: float = 0.0  # used_memory grown ÷ sessions
    redis_key_bytes_per_live_session: float = 0.0  # MEMORY USAGE of its keys
    load: list[float] = field(default_factory=list)  # 1-min load average before, after


@dataclass
class ConfirmRun:
    topups: int
    clients: int
    per_s: float
    cpu_ms_per_confirm: float  # this process: what serve spends on a top-up after the PIN
    postgres_cpu_ms_per_confirm: float  # the bench database's backends meanwhile
    queued_jobs: int
    redis_bytes_per_queued_job: float  # used_memory grown ÷ jobs queued
    redis_key_bytes_per_queued_job: float  # MEMORY USAGE of the job keys, mean


@dataclass
class WorkerRun:
    workers: int
    latency_ms: int
    max_jobs: int
    topups: int
    delivered: int
    failed: int
    seconds: float  # first final_at → last final_at
    delivered_per_s: float
    per_worker_per_s: float
    worker_cpu_ms_per_topup: float  # all workers' CPU ÷ top-ups (delivery, capture, 2 SMS)
    topups_per_s_per_core: float
    # The rest of a delivery's cost: PostgreSQL's backends of the bench database, Redis, the
    # sandbox (the aggregator and SMS gateway: not ours to pay), all cores busy.
    other_cpu_ms_per_topup: dict[str, float]
    machine_busy_cores: float
    confirm: ConfirmRun
    footprints: list[Footprint]
    redis_commands_per_topup: float  # INFO commandstats, all clients (the workers, mostly)
    redis_commands_by_name: dict[str, float]  # the most called, per top-up
    pg_transactions_per_topup: float  # pg_stat_database commits + rollbacks of the database
    drain_s: float  # SIGCONT → every top-up final, its SMS sent, the queue empty
    redis_bytes_per_topup_after: float  # used_memory still held once drained, ÷ top-ups
    redis_keys_after: dict[str, int]  # what holds it: keys by prefix
    redis_claim_key_bytes: float  # MEMORY USAGE of a claim count (kept an hour), mean
    load: list[float] = field(default_factory=list)


@dataclass
class Disk:
    """What the tables grew by for ``count`` things (top-ups, retailers), in bytes each."""

    count: int
    bytes_each: float
    by_table: dict[str, float]  # bytes each, tables that grew


# -- processes: connections and memory ----------------------------------------------------------


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MiB; zeros once it has gone."""
    values = {"VmRSS": 0.0, "VmHWM": 0.0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in values:
                values[name] = int(rest.split()[0]) / 1024
    except OSError:
        pass
    return values["VmRSS"], values["VmHWM"]


def tcp_ports_of(pid: int) -> set[int]:
    """Local TCP ports of the sockets ``pid`` holds (its fds' inodes in /proc/net/tcp{,6})."""
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return set()
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


async def connections(pg: Any, pids: list[int]) -> dict[int, tuple[int, int]]:
    """pid → (connections to the bench database, of which not idle)."""
    rows = await pg.fetch(
        "SELECT client_port, state FROM pg_stat_activity WHERE datname = $1 AND client_port > 0",
        BENCH_DB,
    )
    by_port = {r["client_port"]: r["state"] for r in rows}
    out = {}
    for pid in pids:
        states = [by_port[p] for p in tcp_ports_of(pid) if p in by_port]
        out[pid] = (len(states), sum(1 for s in states if s != "idle"))
    return out


class Watch:
    """Samples each process's connections every 0.25 s while running, keeping the most seen."""

    def __init__(self, pg: Any, footprints: list[Footprint]) -> None:
        self.pg, self.footprints = pg, footprints
        self._task: asyncio.Task[None] | None = None

    async def idle(self, attr: str) -> None:
        found = await connections(self.pg, [f.pid for f in self.footprints])
        for f in self.footprints:
            setattr(f, attr, found[f.pid][0])
            rss, hwm = rss_mb(f.pid)
            if attr == "conns_idle_before":
                f.rss_idle_mb = rss
            else:
                f.rss_after_mb, f.rss_peak_mb = rss, hwm

    async def _run(self) -> None:
        while True:
            found = await connections(self.pg, [f.pid for f in self.footprints])
            for f in self.footprints:
                total, active = found[f.pid]
                f.conns_peak = max(f.conns_peak, total)
                f.conns_active_peak = max(f.conns_active_peak, active)
            await asyncio.sleep(0.25)

    @asynccontextmanager
    async def under_load(self) -> AsyncIterator[None]:
        self._task = asyncio.create_task(self._run())
        try:
            yield
        finally:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task


# -- set-up -------------------------------------------------------------------------------------


@asynccontextmanager
async def private_redis(tmp: Path) -> AsyncIterator[str]:
    """A ``redis-server`` of our own on a free port, no persistence: its memory is ours alone."""
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("no redis-server on the PATH: pass --redis redis://…/N")
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        server,
        *["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        *["--dir", str(tmp)],
        stdout=DEVNULL,
        stderr=DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = aioredis.Redis.from_url(url)
        for _ in range(100):
            try:
                await client.ping()
                break
            except (OSError, aioredis.ConnectionError):
                await asyncio.sleep(0.05)
        await client.aclose()
        yield url
    finally:
        await stop([proc], timeout_s=5)


def environment(args: argparse.Namespace, redis_url: str, var_dir: Path) -> dict[str, str]:
    """The processes' settings: production defaults but for the endpoints and secrets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRGATE_")}
    env.update(
        AIRGATE_DATABASE_URL=pg_url(args.pg, BENCH_DB),
        AIRGATE_REDIS_URL=redis_url,
        AIRGATE_VAR_DIR=str(var_dir),
        AIRGATE_PIN_PEPPER=PEPPER,
        AIRGATE_USSD_SECRET=ussd_journey.SECRET,
        AIRGATE_LOG_LEVEL="WARNING",
        AIRGATE_WORKER_MAX_JOBS=str(args.max_jobs),
    )
    env.update(item.split("=", 1) for item in args.env)
    return env


async def start(*command: str, env: dict[str, str]) -> Process:
    return await asyncio.create_subprocess_exec(
        AIRGATE, *command, env=env, stdout=DEVNULL, stderr=DEVNULL
    )


UVLOOP_WORKER = """
import sys, uvloop
from airgate.cli import main
uvloop.install()
sys.argv = ["airgate", "worker"]
main()
"""


async def start_worker(args: argparse.Namespace, env: dict[str, str]) -> Process:
    """``airgate worker``; ``--worker-loop uvloop`` (an experiment): the same on uvloop's loop."""
    if args.worker_loop == "uvloop":
        return await asyncio.create_subprocess_exec(
            sys.executable, "-c", UVLOOP_WORKER, env=env, stdout=DEVNULL, stderr=DEVNULL
        )
    return await start("worker", env=env)


async def used_memory(redis: aioredis.Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])


async def key_bytes(redis: aioredis.Redis, pattern: str) -> tuple[int, float]:
    """(keys matching, their mean MEMORY USAGE)."""
    keys = [key async for key in redis.scan_iter(match=pattern, count=1000)]
    pipe = redis.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    usage = await pipe.execute() if keys else []
    return len(keys), sum(u or 0 for u in usage) / max(len(keys), 1)


# -- 1. serve -----------------------------------------------------------------------------------


async def serve_run(
    args: argparse.Namespace, env: dict[str, str], pg: Any, redis_url: str
) -> ServeRun:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        AIRGATE,
        "serve",
        env=env | {"AIRGATE_HTTP_HOST": "127.0.0.1", "AIRGATE_HTTP_PORT": str(port)},
        stdout=DEVNULL,
        stderr=DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    footprint = Footprint(proc.pid)
    watch = Watch(pg, [footprint])
    try:
        await wait_http(f"{base}/health", proc)
        await asyncio.sleep(1)
        await watch.idle("conns_idle_before")
        before = load1()
        opts = argparse.Namespace(
            sessions=args.sessions,
            seconds=args.seconds,
            warmup=args.warmup,
            retailers=args.retailers,
            live=args.live,
            redis=redis_url,
            profile=None,
            cprofile=None,
            py_spy=None,
        )
        server = ussd_journey.Server(proc, proc.pid, base)
        async with watch.under_load():
            measured = await ussd_journey.load(opts, "AirGate", server, bare=False)
        await asyncio.sleep(1)
        await watch.idle("conns_idle_after")
        run = ServeRun(
            sessions=args.sessions,
            seconds=measured.seconds,
            hops=measured.hops,
            errors=measured.errors,
            hops_per_s=measured.hops_per_s,
            p50_ms=measured.p50_ms,
            p99_ms=measured.p99_ms,
            server_cpu_us_per_hop=measured.cpu_us["server"],
            hops_per_s_per_core=1e6 / max(measured.cpu_us["server"], 1e-9),
            machine_busy_cores=measured.machine_busy_cores,
            footprint=footprint,
            load=[before, load1()],
        )
        if measured.errors:
            print(f"serve: {measured.errors} errors: {measured.error_samples}", file=sys.stderr)
        if args.live:
            mem = await ussd_journey.memory(opts, base)
            run.live_sessions = mem.live_sessions
            run.redis_bytes_per_live_session = mem.used_memory_per_session
            run.redis_key_bytes_per_live_session = mem.session_bytes + mem.resume_bytes
        return run
    finally:
        await stop([proc])


# -- 2. confirms, 3. workers --------------------------------------------------------------------


async def confirm_backlog(
    core: Any,
    queue: Any,
    redis: aioredis.Redis,
    db: Any,
    args: argparse.Namespace,
    shops: list[int],
) -> ConfirmRun:
    """``--topups`` top-ups confirmed by ``--clients`` tasks, nobody delivering them yet."""
    from core.jobs.queue import QUEUE
    from core.services.topups import confirm_topup

    rng = random.Random(time.monotonic_ns())  # no repeat of an earlier run's (guarded)
    per_client = args.topups // args.clients
    used0 = await used_memory(redis)

    async def client(index: int) -> None:
        mine = shops[index :: args.clients]
        for n in range(per_client):
            await confirm_topup(
                core,
                queue,
                party_id=mine[n % len(mine)],
                msisdn=f"07{rng.choice('12')}{rng.randrange(10**7):07d}",  # Safaricom
                amount_minor=rng.randrange(10, 60) * 100,
                channel=CHANNEL,
            )

    backends = BackendCpu(db)
    await backends.start()
    cpu0, t0 = cpu_s([os.getpid()]), time.perf_counter()
    async with backends.sampling():
        await asyncio.gather(*(client(i) for i in range(args.clients)))
    seconds, cpu = time.perf_counter() - t0, cpu_s([os.getpid()]) - cpu0
    pg_cpu = await backends.used()
    total = per_client * args.clients
    queued = int(await redis.zcard(QUEUE))
    _, job_bytes = await key_bytes(redis, "arq:job:*")
    return ConfirmRun(
        topups=total,
        clients=args.clients,
        per_s=total / seconds,
        cpu_ms_per_confirm=cpu * 1000 / total,
        postgres_cpu_ms_per_confirm=pg_cpu * 1000 / total,
        queued_jobs=queued,
        redis_bytes_per_queued_job=(await used_memory(redis) - used0) / max(queued, 1),
        redis_key_bytes_per_queued_job=job_bytes,
    )


async def finals(core: Any) -> dict[str, int]:
    from core.models import Topup

    async with core.sessions() as session:
        rows = await session.execute(
            select(col(Topup.state), func.count())
            .where(col(Topup.channel) == CHANNEL)
            .group_by(col(Topup.state))
        )
        return {str(state): n for state, n in rows}


async def drained(
    core: Any, redis: aioredis.Redis, sandbox: str, total: int, timeout_s: float
) -> dict[str, int]:
    """Until every top-up is final, its SMS sent and the queue empty."""
    from core.jobs.queue import QUEUE
    from core.models import TopupState

    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as http:
        while True:
            counts = await finals(core)
            done = counts.get(TopupState.DELIVERED, 0) + counts.get(TopupState.FAILED, 0)
            async with http.get(f"{sandbox}/sandbox/stats") as resp:
                stats = await resp.json()
            queued = int(await redis.zcard(QUEUE))
            if done >= total and stats["sms"] >= 2 * stats["delivered"] and queued == 0:
                return {"delivered": 0, "failed": 0, **counts, "sandbox": stats["delivered"]}
            if time.monotonic() > deadline:
                raise SystemExit(f"only {done}/{total} final after {timeout_s} s: {counts}")
            await asyncio.sleep(0.2)


async def start_py_spy(path: str, pid: int) -> Process:
    """``py-spy record`` (next to this interpreter or on the PATH) of ``pid``, collapsed stacks
    (``-f raw``: flamegraph.pl's input, bench/ussd_journey.py's ``summarise``)."""
    spy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    if spy is None:
        raise SystemExit("--py-spy: no py-spy (pip install py-spy)")
    return await asyncio.create_subprocess_exec(
        *[spy, "record", "--pid", str(pid), "--nonblocking", "-r", "200", "-f", "raw"],
        *["-o", path],
        stdout=DEVNULL,
        stderr=DEVNULL,
    )


async def settled(pids: list[int], timeout_s: float = 30) -> None:
    """Until the processes have started: under 20 ms of CPU in 0.5 s (imports, connections done)."""
    deadline = time.monotonic() + timeout_s
    last = cpu_s(pids)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = cpu_s(pids)
        if now - last < 0.02 * len(pids):
            return
        last = now


class BackendCpu:
    """CPU of the bench database's backends over a phase, those that exit during it included
    (a pool's overflow connection closes when returned): sampled every 0.2 s, each backend's
    last value kept."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}

    async def start(self) -> None:
        for pid in await backend_pids(self.db):
            self.first[pid] = self.last[pid] = cpu_s([pid])

    async def sample(self) -> None:
        for pid in await backend_pids(self.db):
            self.first.setdefault(pid, 0.0)  # born in the phase: all its CPU is the phase's
            if (now := cpu_s([pid])) > 0:
                self.last[pid] = now

    async def used(self) -> float:
        await self.sample()
        return sum(self.last.get(pid, start) - start for pid, start in self.first.items())

    @asynccontextmanager
    async def sampling(self) -> AsyncIterator[None]:
        async def run() -> None:
            while True:
                await self.sample()
                await asyncio.sleep(0.2)

        task = asyncio.create_task(run())
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task


async def backend_pids(db: Any) -> set[int]:
    """PostgreSQL backends of the bench database, but for ``db``'s own."""
    rows = await db.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        BENCH_DB,
    )
    return {int(r["pid"]) for r in rows}


async def other_pids(redis: aioredis.Redis, db: Any, sandbox: int) -> dict[str, set[int]]:
    """The processes a drain also keeps busy: PostgreSQL backends of the bench database, the
    Redis server (its own pid, from INFO), the sandbox."""
    server = int((await redis.info("server"))["process_id"])
    return {
        "postgres": await backend_pids(db),
        "redis": {server},
        "sandbox": {sandbox},
    }


async def redis_calls(redis: aioredis.Redis) -> Counter[str]:
    """Commands Redis has run so far, by command (INFO commandstats), INFO itself excepted."""
    stats = await redis.info("commandstats")
    return Counter(
        {
            k.removeprefix("cmdstat_"): int(v["calls"])
            for k, v in stats.items()
            if k != "cmdstat_info"
        }
    )


async def pg_work(db: Any, settle_s: float = 0.0) -> int:
    """Transactions the bench database has ended so far. A busy backend reports its statistics
    at most once a second and an idle one within 10 s (PostgreSQL 15): ``settle_s`` after work."""
    await asyncio.sleep(settle_s)
    row = await db.fetchrow(
        "SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = $1",
        BENCH_DB,
    )
    return int(row["n"])


async def key_prefixes(redis: aioredis.Redis) -> dict[str, int]:
    """Keys by prefix (their first two ``:`` parts), most first."""
    found: dict[str, int] = {}
    async for key in redis.scan_iter(count=1000):
        prefix = ":".join(key.decode(errors="replace").split(":", 2)[:2])
        found[prefix] = found.get(prefix, 0) + 1
    return dict(sorted(found.items(), key=lambda kv: -kv[1])[:8])


async def table_bytes(db: Any, *, packed: bool = False) -> dict[str, int]:
    """Each table's size in the bench database, with its indexes and TOAST; ``packed``: after
    ``VACUUM FULL`` (live rows only, indexes rebuilt)."""
    if packed:
        await db.execute("VACUUM FULL")
    rows = await db.fetch(
        "SELECT c.relname, pg_total_relation_size(c.oid) AS size FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind = 'r' AND n.nspname = 'public'"
    )
    return {r["relname"]: int(r["size"]) for r in rows}


async def worker_run(
    args: argparse.Namespace,
    env: dict[str, str],
    core: Any,
    pg: Any,
    db: Any,
    redis_url: str,
    shops: list[int],
    workers: int,
    latency_ms: int,
) -> tuple[WorkerRun, dict[str, int], tuple[dict[str, int], dict[str, int]]]:
    """A backlog confirmed, then ``workers`` workers drain it against the sandbox; returns the
    run and the tables' sizes: before (packed), after as left and after packed."""
    from core.jobs.queue import JobQueue
    from core.models import Topup, TopupState
    from core.services.verify import verify_ledger

    await flush_redis(redis_url)
    sandbox_port = free_port()
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    env = env | {
        "AIRGATE_PROVIDER_URL": sandbox,
        "AIRGATE_PROVIDER_AUTH_URL": sandbox,
        "AIRGATE_SMS_URL": sandbox,
    }
    redis = aioredis.Redis.from_url(redis_url)
    queue = await JobQueue.connect(redis_url)
    sandbox_proc = await start(
        "sandbox", "--port", str(sandbox_port), "--latency-ms", str(latency_ms),
        "--no-digit-rules", env=env,
    )  # fmt: skip
    procs = [sandbox_proc]
    try:
        await wait_http(f"{sandbox}/sandbox/stats", sandbox_proc, timeout_s=15)
        procs += [await start_worker(args, env) for _ in range(workers)]
        footprints = [Footprint(p.pid) for p in procs[1:]]
        pids = [f.pid for f in footprints]
        await settled(pids)
        watch = Watch(pg, footprints)
        await watch.idle("conns_idle_before")
        # Stopped while the backlog is confirmed: what is measured next is the workers alone,
        # started (imports, connections) and then draining, not competing with the confirms.
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        sizes0 = await table_bytes(db, packed=True)
        used0 = await used_memory(redis)
        before = load1()
        try:
            confirm = await confirm_backlog(core, queue, redis, db, args, shops)
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        others = await other_pids(redis, db, sandbox_proc.pid)
        cpu0, busy0 = cpu_s(pids), machine_busy_s()
        others0 = {name: {p: cpu_s([p]) for p in ps} for name, ps in others.items()}
        backends = BackendCpu(db)
        await backends.start()
        calls0, xacts0 = await redis_calls(redis), await pg_work(db)
        spy = await start_py_spy(args.py_spy, pids[0]) if args.py_spy else None
        t0 = time.perf_counter()
        async with watch.under_load(), backends.sampling():
            counts = await drained(core, redis, sandbox, confirm.topups, args.timeout)
        wall = time.perf_counter() - t0
        cpu = cpu_s(pids) - cpu0
        others = {
            name: ps | set((await other_pids(redis, db, sandbox_proc.pid))[name])
            for name, ps in others.items()
        }
        cpu_by = {
            name: sum(cpu_s([p]) - others0[name].get(p, 0.0) for p in ps) * 1000 / confirm.topups
            for name, ps in others.items()
        }
        cpu_by["postgres"] = await backends.used() * 1000 / confirm.topups
        cpu_by["machine"] = (machine_busy_s() - busy0) * 1000 / confirm.topups
        calls = await redis_calls(redis) - calls0
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes what it has on SIGINT
            await spy.wait()
        busy = machine_busy_s() - busy0
        after = load1()
        await asyncio.sleep(1)
        await watch.idle("conns_idle_after")
        xacts = await pg_work(db, settle_s=11) - xacts0
        sizes1 = await table_bytes(db), await table_bytes(db, packed=True)
        redis_after = await used_memory(redis)
        left = await key_prefixes(redis)
        _, claim_bytes = await key_bytes(redis, "airgate:claims:*")
        if counts["sandbox"] != counts.get(TopupState.DELIVERED, 0):
            raise SystemExit(f"sandbox delivered {counts['sandbox']}, we say {counts}")
        async with core.sessions() as session:
            report = await verify_ledger(session)
            first, last = (
                await session.execute(
                    select(func.min(Topup.final_at), func.max(Topup.final_at)).where(
                        col(Topup.channel) == CHANNEL
                    )
                )
            ).one()
        if not report.ok:
            raise SystemExit(f"ledger verify failed: {report.problems[:5]}")
        seconds = max((last - first).total_seconds(), 1e-3)
        total = confirm.topups
        worker_ms = cpu * 1000 / total
        run = WorkerRun(
            workers=workers,
            latency_ms=latency_ms,
            max_jobs=args.max_jobs,
            topups=total,
            delivered=counts.get(TopupState.DELIVERED, 0),
            failed=counts.get(TopupState.FAILED, 0),
            seconds=seconds,
            delivered_per_s=total / seconds,
            per_worker_per_s=total / seconds / workers,
            worker_cpu_ms_per_topup=worker_ms,
            other_cpu_ms_per_topup=cpu_by,
            topups_per_s_per_core=1000 / max(worker_ms, 1e-9),
            machine_busy_cores=busy / wall,
            confirm=confirm,
            footprints=footprints,
            drain_s=wall,
            redis_commands_per_topup=calls.total() / total,
            redis_commands_by_name={k: round(n / total, 2) for k, n in calls.most_common(8)},
            pg_transactions_per_topup=xacts / total,
            redis_bytes_per_topup_after=(redis_after - used0) / total,
            redis_keys_after=left,
            redis_claim_key_bytes=claim_bytes,
            load=[before, after],
        )
        return run, sizes0, sizes1
    finally:
        await stop(procs, timeout_s=20)
        await queue.close()
        await redis.aclose()
        async with core.transaction() as session:  # the next run counts its own
            await session.execute(
                Topup.__table__.update()  # type: ignore[attr-defined]
                .where(col(Topup.channel) == CHANNEL)
                .values(channel=f"{CHANNEL}-done")
            )


# -- the run ------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    from core.context import open_core
    from core.db import upgrade
    from core.models import Party, Role
    from core.services.seed import seed_demo
    from core.settings import load_settings

    out: dict[str, Any] = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    await recreate_database(args.pg, BENCH_DB)
    pg = await asyncpg.connect(pg_url(args.pg, "test"))
    with tempfile.TemporaryDirectory(prefix="ag-bench-capacity-") as tmp:
        var_dir = Path(tmp)
        async with redis_for(args, var_dir) as redis_url:
            settings = load_settings(
                database_url=pg_url(args.pg, BENCH_DB),
                redis_url=redis_url,
                var_dir=var_dir,
                pin_pepper=PEPPER,
                topup_daily_limit_minor=10**12,
                db_pool_size=args.clients,
            )
            env = environment(args, redis_url, var_dir)
            async with open_core(settings) as core:
                await upgrade(core.engine)
                db = await asyncpg.connect(pg_url(args.pg, BENCH_DB))
                empty = await table_bytes(db, packed=True)
                retailers = max(args.retailers, args.live, args.sessions)
                await seed_demo(core, retailers=retailers)
                # A retailer's rows: its party, accounts, PIN, stock (the seed's demo chain).
                out["disk_per_retailer"] = asdict(
                    disk(empty, await table_bytes(db, packed=True), retailers)
                )
                gc.freeze()
                async with core.sessions() as session:
                    shops = [
                        int(s)
                        for s in (
                            await session.execute(
                                select(col(Party.id)).where(col(Party.role) == Role.RETAILER)
                            )
                        ).scalars()
                    ]
                await flush_redis(redis_url)
                if not args.skip_serve:
                    out["serve"] = asdict(await serve_run(args, env, pg, redis_url))
                runs = []
                for latency in args.latencies:
                    for workers in args.workers:
                        run, sizes0, sizes1 = await worker_run(
                            args, env, core, pg, db, redis_url, shops, workers, latency
                        )
                        runs.append(asdict(run))
                        if "disk" not in out:
                            raw, packed = sizes1
                            out["disk"] = {
                                "packed": asdict(disk(sizes0, packed, run.topups)),
                                "as_left": asdict(disk(sizes0, raw, run.topups)),
                            }
                out["workers"] = runs
                await db.close()
    await pg.close()
    out["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    return out


@asynccontextmanager
async def redis_for(args: argparse.Namespace, tmp: Path) -> AsyncIterator[str]:
    if args.redis != "private":
        yield args.redis
        await flush_redis(args.redis)
        return
    async with private_redis(tmp) as url:
        yield url


def disk(before: dict[str, int], after: dict[str, int], count: int) -> Disk:
    grew = {t: (after.get(t, 0) - n) / count for t, n in before.items() if after.get(t, 0) > n}
    ordered = dict(sorted(grew.items(), key=lambda kv: -kv[1]))
    return Disk(count=count, bytes_each=sum(grew.values()), by_table=ordered)


def machine() -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {"nproc": os.cpu_count(), "cpu": model, "python": sys.version.split()[0]}


# -- output -------------------------------------------------------------------------------------


def render(out: dict[str, Any]) -> None:
    console = Console(width=None if sys.stdout.isatty() else 160)
    m = out["machine"]
    console.print(
        f"{m['nproc']} × {m['cpu']}, Python {m['python']}; {out['started']} → {out['finished']}"
    )
    if serve := out.get("serve"):
        f = serve["footprint"]
        table = Table(
            title=f"serve: USSD journey, {serve['sessions']} sessions, {serve['seconds']:.0f} s"
        )
        for name in ("hops/s", "p50/p99 ms", "errors", "server CPU µs/hop", "hops/s per core",
                     "PG conns idle/peak(active)/after", "RSS MB idle/after/peak",
                     "Redis B per live session (keys)", "load 1 min"):  # fmt: skip
            table.add_column(name, justify="right")
        table.add_row(
            f"{serve['hops_per_s']:,.0f}",
            f"{serve['p50_ms']:.1f} / {serve['p99_ms']:.1f}",
            str(serve["errors"]),
            f"{serve['server_cpu_us_per_hop']:,.0f}",
            f"{serve['hops_per_s_per_core']:,.0f}",
            f"{f['conns_idle_before']} / {f['conns_peak']} ({f['conns_active_peak']}) / "
            f"{f['conns_idle_after']}",
            f"{f['rss_idle_mb']:.0f} / {f['rss_after_mb']:.0f} / {f['rss_peak_mb']:.0f}",
            f"{serve['redis_bytes_per_live_session']:,.0f} "
            f"({serve['redis_key_bytes_per_live_session']:,.0f})",
            " → ".join(f"{x:.2f}" for x in serve["load"]),
        )
        console.print(table)
    table = Table(title="workers: a confirmed backlog delivered to the sandbox (2 SMS each)")
    for name in ("workers", "sandbox ms", "top-ups", "confirms/s", "confirm CPU ms",
                 "Redis B/queued job (key)", "delivered/s", "per worker", "worker CPU ms/top-up",
                 "top-ups/s per core", "drain s", "busy cores",
                 "PG conns per worker idle/peak(active)/after", "RSS MB per worker idle/after/peak",
                 "load 1 min"):  # fmt: skip
        table.add_column(name, justify="right")
    for r in out.get("workers", []):
        c, fs = r["confirm"], r["footprints"]
        table.add_row(
            str(r["workers"]),
            str(r["latency_ms"]),
            f"{r['topups']:,} ({r['failed']} failed)",
            f"{c['per_s']:,.0f}",
            f"{c['cpu_ms_per_confirm']:.2f}",
            f"{c['redis_bytes_per_queued_job']:,.0f} ({c['redis_key_bytes_per_queued_job']:,.0f})",
            f"{r['delivered_per_s']:,.0f}",
            f"{r['per_worker_per_s']:,.0f}",
            f"{r['worker_cpu_ms_per_topup']:.2f}",
            f"{r['topups_per_s_per_core']:,.0f}",
            f"{r['drain_s']:.1f}",
            f"{r['machine_busy_cores']:.2f}",
            ", ".join(
                f"{f['conns_idle_before']}/{f['conns_peak']}({f['conns_active_peak']})"
                f"/{f['conns_idle_after']}"
                for f in fs
            ),  # fmt: skip
            ", ".join(
                f"{f['rss_idle_mb']:.0f}/{f['rss_after_mb']:.0f}/{f['rss_peak_mb']:.0f}" for f in fs
            ),  # fmt: skip
            " → ".join(f"{x:.2f}" for x in r["load"]),
        )
    console.print(table)
    for r in out.get("workers", []):
        console.print(
            f"Redis still held after the drain ({r['workers']} workers): "
            f"{r['redis_bytes_per_topup_after']:,.0f} B per top-up; keys {r['redis_keys_after']}; "
            f"a claim key {r.get('redis_claim_key_bytes', 0):.0f} B (MEMORY USAGE)"
        )
        split = ", ".join(f"{k} {v:.2f}" for k, v in r["other_cpu_ms_per_topup"].items())
        console.print(
            f"  CPU ms per top-up: workers {r['worker_cpu_ms_per_topup']:.2f}, {split}; "
            f"per top-up: {r['redis_commands_per_topup']:.1f} Redis commands, "
            f"{r['pg_transactions_per_topup']:.1f} PostgreSQL transactions (all processes); "
            f"Redis by command: {r['redis_commands_by_name']}"
        )
    if "model" in out:
        render_model(console, out["model"])
    if d := out.get("disk_per_retailer"):
        split = ", ".join(f"{t} {b:,.0f}" for t, b in list(d["by_table"].items())[:6])
        console.print(
            f"PostgreSQL per retailer (packed; the seed's {d['count']:,}): "
            f"{d['bytes_each']:,.0f} B — {split}"
        )
    for how, d in out.get("disk", {}).items():
        split = ", ".join(f"{t} {b:,.0f}" for t, b in d["by_table"].items())
        console.print(
            f"PostgreSQL per top-up ({how}; delivered, 2 SMS; {d['count']:,}): "
            f"{d['bytes_each']:,.0f} B — {split}"
        )


# -- the capacity model -------------------------------------------------------------------------


def model(out: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """What a deployment for ``--day`` top-ups a day needs, from the figures measured above and
    the assumptions in ``args`` (docs/OPERATIONS.md, "Capacity model", states and explains them).
    CPU figures are per core of this machine; every count is rounded up."""
    serve, runs = out["serve"], [r for r in out["workers"] if r["latency_ms"] == 0]
    runs = runs or out["workers"]
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    hop_ms = serve["server_cpu_us_per_hop"] / 1000
    confirm_ms = mean([r["confirm"]["cpu_ms_per_confirm"] for r in runs])
    pg_ms = mean([r["confirm"]["postgres_cpu_ms_per_confirm"] for r in runs]) + mean(
        [r["other_cpu_ms_per_topup"]["postgres"] for r in runs]
    )
    worker_ms = mean([r["worker_cpu_ms_per_topup"] for r in runs])
    peak = args.day * args.peak_hour_share / 3600 * args.burst  # top-ups/s to carry
    # serve: the USSD share's hops (the PIN hop's confirm counted apart, as a confirm), the rest
    # through the API at its measured HTTP overhead.
    # Abandoned journeys counted as whole ones (an upper bound).
    hops_ms = args.journeys_per_topup * (args.hops - 1) * hop_ms
    serve_ms = (
        args.ussd_share * (hops_ms + confirm_ms)
        + (1 - args.ussd_share) * confirm_ms * args.api_overhead
    )
    serve_cores = peak * serve_ms / 1000
    serve_procs = max(2, ceil(serve_cores * args.headroom))
    worker_cores = peak * worker_ms / 1000
    in_flight = peak * (args.aggregator_s + 2 * args.sms_s)  # deliver + 2 SMS jobs, Little's law
    workers = max(2, ceil(worker_cores * args.headroom), ceil(in_flight / args.max_jobs))
    # arq reads the 5 × max_jobs oldest due jobs a poll, and a running job stays in the queue
    # until it ends: all workers together never run more than that at once, however many.
    window = 5 * args.max_jobs
    pg_cores = peak * pg_ms / 1000 * args.headroom
    per_process = args.pool + args.overflow + args.lookups
    active = serve["footprint"]["conns_active_peak"] * serve_procs + workers * max(
        f["conns_active_peak"] for r in runs for f in r["footprints"]
    )
    journeys_s = peak * args.ussd_share * args.journeys_per_topup
    session_b = serve["redis_bytes_per_live_session"]
    job_b = mean([r["confirm"]["redis_bytes_per_queued_job"] for r in runs])
    kept_b = mean([r["redis_bytes_per_topup_after"] for r in runs])
    redis = {
        "sessions": journeys_s * args.session_s * session_b,
        "queue_in_flight": in_flight * job_b,
        "outage_backlog": peak / args.burst * args.outage_min * 60 * job_b,
        "claims_last_hour": args.day * args.peak_hour_share * kept_b,
    }
    disk = out["disk"]
    rss = serve["footprint"]["rss_peak_mb"] * serve_procs + workers * max(
        f["rss_peak_mb"] for r in runs for f in r["footprints"]
    )
    return {
        "assumptions": {k: getattr(args, k) for k in MODEL_ARGS},
        "peak_topups_per_s": peak,
        "serve_cpu_ms_per_topup": serve_ms,
        "serve_cores": serve_cores,
        "serve_processes": serve_procs,
        "worker_cpu_ms_per_topup": worker_ms,
        "worker_cores": worker_cores,
        "in_flight": in_flight,
        "workers": workers,
        "queue_window": window,
        "postgres_cpu_ms_per_topup": pg_ms,
        "postgres_cores": pg_cores,
        # A worker has no lookup connections (the first hop's, serve's only).
        "pg_client_connections": serve_procs * per_process + workers * (per_process - args.lookups),
        "pg_active_connections": active,
        "redis_bytes": redis,
        "disk_gb_per_day": args.day * disk["packed"]["bytes_each"] / 1e9,
        "disk_gb_per_day_unvacuumed": args.day * disk["as_left"]["bytes_each"] / 1e9,
        "disk_gb_retailers": args.retailers_total
        * out.get("disk_per_retailer", {}).get("bytes_each", 0.0)
        / 1e9,
        "rss_gb": rss / 1024,
    }


MODEL_ARGS = (
    "day", "retailers_total", "peak_hour_share", "burst", "ussd_share", "hops",
    "journeys_per_topup", "api_overhead", "headroom", "aggregator_s", "sms_s", "session_s",
    "outage_min", "max_jobs", "pool", "overflow", "lookups",
)  # fmt: skip


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("capacity model (assumptions)")
    g.add_argument("--day", type=float, default=5e6, help="top-ups a day")
    g.add_argument("--retailers-total", type=int, default=100_000, help="retailers (stated)")
    g.add_argument("--peak-hour-share", type=float, default=0.10, help="of the day, busiest hour")
    g.add_argument("--burst", type=float, default=2.0, help="busiest minute ÷ busiest hour's mean")
    g.add_argument("--ussd-share", type=float, default=0.7, help="top-ups over USSD (rest: API)")
    g.add_argument("--hops", type=int, default=6, help="USSD hops of a top-up's journey")
    g.add_argument(
        "--journeys-per-topup", type=float, default=1.3, help="USSD journeys (some abandoned)"
    )
    g.add_argument("--api-overhead", type=float, default=1.3, help="an API top-up ÷ a confirm")
    g.add_argument("--headroom", type=float, default=2.0, help="cores provisioned ÷ cores busy")
    g.add_argument("--aggregator-s", type=float, default=3.0, help="aggregator answer time, s")
    g.add_argument("--sms-s", type=float, default=1.0, help="SMS gateway answer time, s")
    g.add_argument("--session-s", type=float, default=60.0, help="a USSD session's life in Redis")
    g.add_argument("--outage-min", type=float, default=30.0, help="aggregator outage to queue")
    g.add_argument("--pool", type=int, default=10, help="AIRGATE_DB_POOL_SIZE")
    g.add_argument("--overflow", type=int, default=5, help="AIRGATE_DB_MAX_OVERFLOW")
    g.add_argument("--lookups", type=int, default=4, help="AIRGATE_DB_LOOKUP_CONNECTIONS")


def render_model(console: Console, m: dict[str, Any]) -> None:
    a = m["assumptions"]
    console.print(
        f"Capacity model: {a['day']:,.0f} top-ups a day, {a['retailers_total']:,} retailers; "
        f"peak {m['peak_topups_per_s']:,.0f}/s (busiest hour {a['peak_hour_share']:.0%} of the "
        f"day × burst {a['burst']:g}); {a['ussd_share']:.0%} over USSD at {a['hops']} hops; "
        f"headroom ×{a['headroom']:g}; aggregator {a['aggregator_s']:g} s, SMS {a['sms_s']:g} s",
        highlight=False,
    )
    table = Table()
    for name in ("what", "per top-up", "at peak", "provision"):
        table.add_column(name, justify="right")
    r = m["redis_bytes"]
    table.add_row(
        "serve", f"{m['serve_cpu_ms_per_topup']:.2f} ms CPU", f"{m['serve_cores']:.2f} cores",
        f"{m['serve_processes']} processes",
    )  # fmt: skip
    table.add_row(
        "worker", f"{m['worker_cpu_ms_per_topup']:.2f} ms CPU",
        f"{m['worker_cores']:.2f} cores, {m['in_flight']:,.0f} jobs in flight",
        f"{m['workers']} processes",
    )  # fmt: skip
    table.add_row(
        "PostgreSQL", f"{m['postgres_cpu_ms_per_topup']:.2f} ms CPU",
        f"{m['pg_active_connections']} connections active at most",
        f"{m['postgres_cores']:.1f} cores; {m['pg_client_connections']} client connections "
        "(PgBouncer)",
    )  # fmt: skip
    table.add_row(
        "Redis", "",
        f"sessions {r['sessions'] / 1e6:.1f} MB, queue {r['queue_in_flight'] / 1e6:.1f} MB, "
        f"claims {r['claims_last_hour'] / 1e6:.0f} MB",
        f"+ {r['outage_backlog'] / 1e6:.0f} MB per {a['outage_min']:g} min aggregator outage",
    )  # fmt: skip
    table.add_row(
        "disk", f"{m['disk_gb_retailers']:.2f} GB for the retailers",
        f"{m['disk_gb_per_day']:.1f} GB a day (packed)",
        f"{m['disk_gb_per_day_unvacuumed']:.1f} GB a day before vacuum",
    )  # fmt: skip
    table.add_row("memory", "", "", f"{m['rss_gb']:.1f} GB RSS of all processes")
    console.print(table)
    if m["in_flight"] > m["queue_window"]:
        console.print(
            f"[bold]{m['in_flight']:,.0f} jobs in flight exceed the queue's window of "
            f"{m['queue_window']:,} (5 × AIRGATE_WORKER_MAX_JOBS): raise "
            f"AIRGATE_WORKER_MAX_JOBS to at least {ceil(m['in_flight'] / 5 / 0.8):,}[/bold]"
        )


def markdown(out: dict[str, Any]) -> str:
    """The figures as docs/OPERATIONS.md and docs/BENCHMARKS.md show them (``--markdown``)."""
    serve, runs, m = out["serve"], out["workers"], out.get("model")
    f = serve["footprint"]
    lines = [
        "| process | throughput here | CPU | PostgreSQL connections idle / most (active) / "
        "idle after | RSS idle / peak |",
        "|---|--:|--:|--:|--:|",
        f"| `serve`, USSD hops | {serve['hops_per_s']:,.0f} hops/s (p50 {serve['p50_ms']:.1f}, "
        f"p99 {serve['p99_ms']:.1f} ms) | {serve['server_cpu_us_per_hop']:,.0f} µs a hop: "
        f"**{serve['hops_per_s_per_core']:,.0f} hops/s per core** | {f['conns_idle_before']} / "
        f"{f['conns_peak']} ({f['conns_active_peak']}) / {f['conns_idle_after']} | "
        f"{f['rss_idle_mb']:.0f} / {f['rss_peak_mb']:.0f} MB |",
    ]
    for r in runs:
        c = r["confirm"]
        lines.append(
            f"| confirm (`serve` after the PIN), {c['topups']:,} | {c['per_s']:,.0f}/s "
            f"({c['clients']} tasks) | {c['cpu_ms_per_confirm']:.2f} ms + PostgreSQL "
            f"{c['postgres_cpu_ms_per_confirm']:.2f} ms | | |"
        )
        fs = r["footprints"]
        conns = ", ".join(
            f"{x['conns_idle_before']} / {x['conns_peak']} ({x['conns_active_peak']}) / "
            f"{x['conns_idle_after']}"
            for x in fs
        )
        rss = ", ".join(f"{x['rss_idle_mb']:.0f} / {x['rss_peak_mb']:.0f}" for x in fs)
        o = r["other_cpu_ms_per_topup"]
        lines.append(
            f"| {r['workers']} `worker`, {r['topups']:,} top-ups | {r['delivered_per_s']:,.0f} "
            f"delivered/s ({r['per_worker_per_s']:,.0f} per worker) | "
            f"{r['worker_cpu_ms_per_topup']:.2f} ms a top-up: **{r['topups_per_s_per_core']:,.0f}"
            f" top-ups/s per core**; PostgreSQL {o['postgres']:.2f}, Redis {o['redis']:.2f}, "
            f"sandbox {o['sandbox']:.2f} ms | {conns} | {rss} MB |"
        )
    r0 = runs[0]
    lines += [
        "",
        f"Redis: **{serve['redis_bytes_per_live_session']:,.0f} B per live USSD session** "
        f"(`used_memory`; `MEMORY USAGE` of its keys "
        f"{serve['redis_key_bytes_per_live_session']:,.0f} B), "
        f"**{r0['confirm']['redis_bytes_per_queued_job']:,.0f} B per queued job** (the job key "
        f"{r0['confirm']['redis_key_bytes_per_queued_job']:,.0f} B), "
        f"**{r0['redis_bytes_per_topup_after']:,.0f} B per top-up kept an hour** after delivery "
        f"(its claim count; the key alone {r0.get('redis_claim_key_bytes', 0):.0f} B). "
        f"Per top-up: {r0['redis_commands_per_topup']:.0f} Redis commands ("
        + ", ".join(f"{k} {v:g}" for k, v in list(r0["redis_commands_by_name"].items())[:4])
        + f"), {r0['pg_transactions_per_topup']:.2f} PostgreSQL transactions in the worker "
        f"(outcomes and notices are written in batches).",
    ]
    d, dr = out["disk"], out.get("disk_per_retailer")
    split = ", ".join(f"{t} {b:,.0f}" for t, b in d["packed"]["by_table"].items())
    lines.append(
        f"PostgreSQL: **{d['packed']['bytes_each']:,.0f} B per top-up** packed ({split}); "
        f"{d['as_left']['bytes_each']:,.0f} B as left before vacuum"
        + (f"; {dr['bytes_each']:,.0f} B per retailer." if dr else ".")
    )
    if m:
        a, rb = m["assumptions"], m["redis_bytes"]
        lines += [
            "",
            f"- Peak: {a['day']:,.0f} × {a['peak_hour_share']:.0%} ÷ 3,600 × {a['burst']:g} = "
            f"**{m['peak_topups_per_s']:,.0f} top-ups/s**.",
            f"- `serve`: {m['serve_cpu_ms_per_topup']:.2f} ms a top-up (USSD share × (journeys ×"
            f" {a['hops'] - 1} hops + a confirm) + API share × confirm × {a['api_overhead']:g}) ×"
            f" {m['peak_topups_per_s']:,.0f}/s = {m['serve_cores']:.2f} cores; × headroom "
            f"{a['headroom']:g} → **{m['serve_processes']} processes** (one per core).",
            f"- `worker`: {m['worker_cpu_ms_per_topup']:.2f} ms × {m['peak_topups_per_s']:,.0f}/s ="
            f" {m['worker_cores']:.2f} cores; jobs in flight {m['peak_topups_per_s']:,.0f}/s × "
            f"({a['aggregator_s']:g} + 2 × {a['sms_s']:g} s) = {m['in_flight']:,.0f}, "
            f"{a['max_jobs']} a worker (`AIRGATE_WORKER_MAX_JOBS`) → **{m['workers']} workers**;"
            f" the queue window 5 × {a['max_jobs']} = {m['queue_window']:,} "
            + ("holds them." if m["in_flight"] <= m["queue_window"] else "**does not hold them**."),
            f"- PostgreSQL: {m['postgres_cpu_ms_per_topup']:.2f} ms a top-up (confirm + delivery) "
            f"→ **{m['postgres_cores']:.1f} cores** with the headroom; "
            f"{m['pg_client_connections']} client connections at most (processes × pools) → "
            f"PgBouncer; at most {m['pg_active_connections']} busy at once if every process peaks"
            " together.",
            f"- Redis: sessions {m['peak_topups_per_s']:,.0f}/s × {a['ussd_share']:.0%} × "
            f"{a['journeys_per_topup']:g} × {a['session_s']:g} s × B per session = "
            f"{rb['sessions'] / 1e6:.0f} MB; jobs in flight {rb['queue_in_flight'] / 1e6:.1f} MB; "
            f"claim counts of the busiest hour {rb['claims_last_hour'] / 1e6:.0f} MB; a "
            f"{a['outage_min']:g}-minute aggregator outage queues "
            f"{rb['outage_backlog'] / 1e6:.0f} MB more.",
            f"- Disk: {a['day']:,.0f} × B per top-up = **{m['disk_gb_per_day']:.1f} GB a day** "
            f"of tables and indexes ({m['disk_gb_per_day_unvacuumed']:.1f} GB before vacuum "
            f"reuses the updates' space), plus WAL and backups; "
            f"{a['retailers_total']:,} retailers {m['disk_gb_retailers']:.2f} GB.",
            f"- Memory: {m['rss_gb']:.1f} GB of RSS for all `serve` and `worker` processes.",
            "",
            f"In short: **{m['serve_processes']} `serve` and {m['workers']} `worker` processes** "
            f"(`AIRGATE_WORKER_MAX_JOBS={a['max_jobs']}`), {m['serve_processes'] + m['workers']}"
            " cores of application hosts, on two hosts at least so that one can fail; PostgreSQL "
            f"with {max(2, ceil(m['postgres_cores'] * 2))} cores (its backends' "
            f"{m['postgres_cores']:.1f} with headroom, doubled for WAL, vacuum, checkpoints, "
            "reports and backups) behind PgBouncer; a Redis for the queue of "
            f"{max(1, ceil(sum(rb.values()) * 2 / 1e9))} GB (`noeviction`); "
            f"{m['disk_gb_per_day'] * 365 / 1000:.1f} TB a year of tables before retention.",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=32, help="concurrent USSD sessions")
    parser.add_argument("--seconds", type=float, default=15, help="measured USSD window")
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--live", type=int, default=300, help="sessions left at confirm (0: skip)")
    parser.add_argument("--retailers", type=int, default=300)
    parser.add_argument("--topups", type=int, default=3000, help="backlog per worker run")
    parser.add_argument("--clients", type=int, default=16, help="tasks confirming the backlog")
    parser.add_argument("--workers", default="1,2", help="worker processes per run")
    parser.add_argument("--latencies", default="0", help="sandbox latency per run, ms")
    parser.add_argument("--max-jobs", type=int, default=256, help="AIRGATE_WORKER_MAX_JOBS")
    parser.add_argument("--timeout", type=float, default=300, help="s to wait for a drain")
    parser.add_argument("--skip-serve", action="store_true")
    parser.add_argument(
        "--env", action="append", default=[], help="K=V for serve and workers (repeatable)"
    )
    parser.add_argument("--markdown", action="store_true", help="also the docs' tables")
    parser.add_argument("--from-json", help="no run: the model from an earlier run's JSON line")
    add_model_flags(parser)
    parser.add_argument("--worker-loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument(
        "--py-spy", help="py-spy record (-f raw) of the first worker of each drain, to here"
    )
    parser.add_argument("--pg", default=PG_TCP, help="server URL (TCP: connections by port)")
    parser.add_argument(
        "--redis", default="private", help="'private' (a redis-server of our own) or a URL, flushed"
    )
    args = parser.parse_args()
    if args.pg.startswith("/"):
        parser.error("--pg must be a TCP URL: connections are told apart by client port")
    args.workers = [int(x) for x in args.workers.split(",")]
    args.latencies = [int(x) for x in args.latencies.split(",")]
    if args.from_json:
        out = json.loads(Path(args.from_json).read_text().strip().splitlines()[-1])
    else:
        note_load()
        out = asyncio.run(bench(args))
    if "serve" in out and out.get("workers"):
        out["model"] = model(out, args)
    render(out)
    if args.markdown and "serve" in out and out.get("workers"):
        print(markdown(out))
    print(json.dumps(out, separators=(",", ":")))


if __name__ == "__main__":
    main()
