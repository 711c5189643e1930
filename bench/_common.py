"""What the end-to-end benchmarks share (bench/topups.py, bench/ussd_journey.py): their PostgreSQL
and Redis set-up and flags, their processes, and CPU accounting from /proc.

Imported as ``_common``: a script run as ``python bench/x.py`` has ``bench/`` on its path.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import time
from asyncio.subprocess import Process
from pathlib import Path

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import redis.asyncio as aioredis

PEPPER = "bench-pepper-0123456789abcdef"
AIRGATE = str(Path(sys.executable).parent / "airgate")
PG_DEFAULT = "/var/run/postgresql"
REDIS_DEFAULT = "redis://127.0.0.1:6379/0"
# The PostgreSQL connections the recorded figures were measured with: one server process with the
# machine to itself (AIRGATE_DB_*: the production defaults are smaller, sized for several
# processes under one server's max_connections; README, Configuration).
BENCH_POOL = {
    "AIRGATE_DB_POOL_SIZE": "40",
    "AIRGATE_DB_MAX_OVERFLOW": "10",
    "AIRGATE_DB_LOOKUP_CONNECTIONS": "8",
}

# -- flags --------------------------------------------------------------------------------------


def add_server_flags(parser: argparse.ArgumentParser, *, redis_extra: str = "") -> None:
    """``--pg`` (a server URL or socket directory) and ``--redis`` (a URL whose database the run
    flushes)."""
    parser.add_argument(
        "--pg",
        default=PG_DEFAULT,
        help="server URL (postgresql://postgres@127.0.0.1:5432) or socket directory",
    )
    parser.add_argument(
        "--redis",
        default=REDIS_DEFAULT,
        help=f"a Redis URL whose database the run flushes (the tests use 1-15){redis_extra}",
    )


def note_load() -> None:
    """Warn on stderr when the machine is already busy: the figures would be disturbed."""
    if (load := os.getloadavg()[0]) > 0.5:
        print(f"note: load average {load:.2f} at start; is something else busy?", file=sys.stderr)


# -- PostgreSQL and Redis -----------------------------------------------------------------------


def pg_url(server: str, database: str) -> str:
    """``server`` is a URL (TCP) or a socket directory (``/var/run/postgresql``)."""
    if server.startswith("/"):
        return f"postgresql://postgres@/{database}?host={server}"
    return f"{server}/{database}"


async def recreate_database(server: str, database: str) -> None:
    """Drop ``database`` (closing its connections) and create it empty, through ``test``."""
    conn = await asyncpg.connect(pg_url(server, "test"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()


async def flush_redis(url: str) -> None:
    redis = aioredis.Redis.from_url(url)
    try:
        await redis.flushdb()
    finally:
        await redis.aclose()


# -- processes ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_http(url: str, proc: Process | None = None, timeout_s: float = 30) -> None:
    """Until ``url`` answers (any status under 500); exit if ``proc`` exits first."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(url) as resp:
                    if resp.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            if proc is not None and proc.returncode is not None:
                raise SystemExit(f"the server exited ({proc.returncode}) before {url} answered")
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not answer")
            await asyncio.sleep(0.1)


async def stop(procs: list[Process], timeout_s: float = 30) -> None:
    """SIGTERM to each, then wait; one still running after ``timeout_s`` is killed."""
    for proc in procs:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()


# -- CPU and latency from /proc -----------------------------------------------------------------


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def sys_s(pid: int) -> float:
    """System (kernel) CPU seconds of one process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return int(fields[12]) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def pids_named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def pct(samples: list[float], q: float) -> float:
    """The ``q`` quantile of ``samples`` (seconds), in ms."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0
