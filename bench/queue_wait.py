"""What waiting for a replica (WAIT) costs the job queue: a claim and an enqueue, with and without.

A local primary and its replica (two ``redis-server`` on free ports, files in a temporary folder,
both stopped at the end); the job queue's own scripts (core/jobs/scripts.py) run against the
primary: ``--jobs`` enqueues one at a time, then claims in batches of ``--batch`` (as a worker
polls), each with 0 and with 1 replica to wait for. Reported: the median and 99th percentile of
one enqueue and of one claim, in microseconds.

Run:  .venv/bin/python bench/queue_wait.py [--jobs 2000] [--batch 50] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from core.jobs import scripts
from core.jobs.queue import connect_client

QUEUE = "bench:queue"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(folder: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    server = shutil.which("redis-server")
    assert server, "redis-server is not installed"
    args = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(folder)]
    args += ["--dbfilename", f"{port}.rdb", "--repl-diskless-sync-delay", "0", *extra]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def in_sync(primary: int) -> None:
    client = aioredis.Redis(port=primary)
    try:
        for _ in range(200):
            try:
                info = await client.info("replication")
                if isinstance(info.get("slave0"), dict) and info["slave0"]["state"] == "online":
                    return
            except (OSError, aioredis.RedisError):
                pass
            await asyncio.sleep(0.05)
        raise RuntimeError("the replica never came online")
    finally:
        await client.aclose()


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_us": round(statistics.median(ordered) * 1e6, 1),
        "p99_us": round(ordered[int(len(ordered) * 0.99) - 1] * 1e6, 1),
    }


async def run(url: str, jobs: int, batch: int, replicas: int) -> dict[str, Any]:
    redis = await connect_client(url, wait_ms=200)
    try:
        await redis.flushdb()
        enqueue: list[float] = []
        for i in range(jobs):
            started = time.perf_counter()
            await scripts.enqueue(redis, queue=QUEUE, function="f", args=(i,), job_id=f"j{i}")
            if replicas:  # the enqueue side's WAIT, were it on (it is not: docs/DECISIONS.md)
                await redis.wait(replicas, 200)
            enqueue.append(time.perf_counter() - started)
        claim: list[float] = []
        ids = [f"j{i}".encode() for i in range(jobs)]
        for first in range(0, jobs, batch):
            started = time.perf_counter()
            got = await scripts.claim(
                redis, queue=QUEUE, job_ids=ids[first : first + batch], limit=batch,
                in_progress_ms=60_000, replicas=replicas, wait_ms=200,
            )  # fmt: skip
            claim.append(time.perf_counter() - started)
            assert got.replicated and len(got.jobs) == len(ids[first : first + batch])
        return {"replicas": replicas, "enqueue": percentiles(enqueue), "claim": percentiles(claim)}
    finally:
        await redis.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ag-queue-wait-") as folder:
        primary, replica = free_port(), free_port()
        servers = [start(Path(folder), primary)]
        try:
            servers.append(start(Path(folder), replica, "--replicaof", "127.0.0.1", str(primary)))
            await in_sync(primary)
            url = f"redis://127.0.0.1:{primary}/0"
            results = [await run(url, args.jobs, args.batch, n) for n in (0, 1)]
        finally:
            for server in servers:
                server.kill()
                server.wait()
    if args.json:
        print(json.dumps(results))
        return
    for r in results:
        print(
            f"WAIT {r['replicas']}: enqueue p50 {r['enqueue']['p50_us']} us, "
            f"p99 {r['enqueue']['p99_us']} us; claim of {args.batch} p50 "
            f"{r['claim']['p50_us']} us, p99 {r['claim']['p99_us']} us"
        )


if __name__ == "__main__":
    asyncio.run(main())
