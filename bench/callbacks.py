"""Outcome callbacks: what the outbox costs the finishing transaction, and deliveries per second.

On PostgreSQL and Redis, with ``airgate worker`` as its own process and a receiver (aiohttp, 200 at
once) in this one:

- **outbox cost**: the time :func:`core.services.callbacks.outbox.owe` adds to a finishing
  transaction (core/services/finish.py) for a batch of 16 final top-ups, with no endpoint
  registered (what every deployment pays) and with every retailer and the distributor registered
  (two rows per top-up); median and p99 over ``--batches`` transactions (rolled back);
- **deliveries**: ``--deliveries`` outbox rows committed and enqueued as the finisher does, POSTed
  signed by one worker: deliveries/s = rows / (last delivered_at - first created_at), and the
  latency from the commit to the receiver's 200 being recorded (p50, p99).

The top-ups are inserted as final rows directly (what is measured starts after a top-up is final).

Run:  .venv/bin/python bench/callbacks.py [--deliveries 4000] [--batches 500] [--retailers 64]
      [--pg /var/run/postgresql | postgresql://postgres@127.0.0.1:5432]
      [--redis redis://127.0.0.1:6379/0] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import func, insert, select
from sqlmodel import col

from core.context import Core, open_core
from core.db import upgrade
from core.jobs.queue import JobQueue
from core.models import CallbackDelivery, CallbackState, Party, Product, Role, Topup
from core.models.types import utcnow
from core.services import callbacks
from core.services.audit import Actor
from core.services.callbacks import outbox
from core.services.seed import seed_demo
from core.settings import load_settings

from _common import (  # isort: skip (bench/, the script's own folder)
    AIRGATE,
    PEPPER,
    add_server_flags,
    flush_redis,
    note_load,
    pct,
    pg_url,
    recreate_database,
    stop,
)

DATABASE = "airgate_bench_callbacks"
BATCH = 16  # the finisher's MAX_BATCH


async def final_topups(core: Core, shops: list[int], count: int) -> list[str]:
    async with core.sessions() as session:
        product = (
            await session.execute(
                select(col(Product.code), col(Product.operator_code)).where(
                    col(Product.kind) == "airtime"
                )
            )
        ).first()
    assert product is not None
    now = utcnow()
    rows = [
        {
            "id": f"TB{n:014d}",
            "party_id": shops[n % len(shops)],
            "msisdn": "+254712345670",
            "operator_code": product.operator_code,
            "product_code": product.code,
            "kind": "airtime",
            "amount_minor": 5000,
            "currency": "KES",
            "channel": "bench",
            "state": "delivered",
            "due_at": now,
            "sends": 1,
            "checks": 0,
            "created_at": now,
            "final_at": now,
        }
        for n in range(count)
    ]
    async with core.transaction() as session:
        await session.execute(insert(Topup), rows)
    return [r["id"] for r in rows]


async def owe_cost(core: Core, ids: list[str], batches: int) -> dict[str, float]:
    """Milliseconds ``owe`` takes for a batch, inside a transaction that is then rolled back."""
    samples = []
    for n in range(batches):
        batch = ids[(n * BATCH) % len(ids) :][:BATCH]
        async with core.sessions() as session, session.begin():
            start = time.perf_counter()
            await outbox.owe(session, batch, window_s=86_400)
            samples.append(time.perf_counter() - start)
            await session.rollback()
    return {"p50_ms": statistics.median(samples) * 1000, "p99_ms": pct(samples, 0.99)}


async def receiver() -> tuple[web.AppRunner, str, list[int]]:
    got: list[int] = []

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        got.append(1)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}", got


async def delivered(core: Core) -> int:
    async with core.sessions() as session:
        found = await session.execute(
            select(func.count()).where(col(CallbackDelivery.state) == CallbackState.DELIVERED)
        )
        return int(found.scalar_one())


async def until_delivered(core: Core, count: int) -> None:
    while True:
        if await delivered(core) >= count:
            return
        await asyncio.sleep(0.05)


async def deliveries(core: Core, queue: JobQueue, ids: list[str], env: dict[str, str]) -> Any:
    worker = await asyncio.create_subprocess_exec(
        AIRGATE, "worker", env=env, stdout=asyncio.subprocess.DEVNULL
    )
    try:
        # One warm-up delivery: the worker is up once it is delivered.
        async with core.transaction() as session:
            warm = await outbox.owe(session, ids[:1], window_s=86_400)
        await outbox.enqueue(queue, warm)
        await until_delivered(core, len(warm))
        start = utcnow()
        made = 0
        for n in range(1, len(ids), BATCH):
            async with core.transaction() as session:
                new = await outbox.owe(session, ids[n : n + BATCH], window_s=86_400)
            await outbox.enqueue(queue, new)
            made += len(new)
        await until_delivered(core, made + len(warm))
    finally:
        await stop([worker])
    async with core.sessions() as session:
        rows = (
            await session.execute(
                select(col(CallbackDelivery.created_at), col(CallbackDelivery.delivered_at)).where(
                    col(CallbackDelivery.created_at) >= start
                )
            )
        ).all()
    latencies = [(d - c).total_seconds() for c, d in rows if d is not None]
    span_s = (max(d for _, d in rows if d) - min(c for c, _ in rows)).total_seconds()
    return {
        "deliveries": len(rows),
        "per_s": len(rows) / span_s,
        "p50_ms": pct(latencies, 0.5),
        "p99_ms": pct(latencies, 0.99),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    await recreate_database(args.pg, DATABASE)
    await flush_redis(args.redis)
    url = pg_url(args.pg, DATABASE)
    var = Path(tempfile.mkdtemp(prefix="airgate-bench-callbacks-"))
    settings = load_settings(
        database_url=url,
        redis_url=args.redis,
        pin_pepper=PEPPER,
        var_dir=var,
        callback_allow_private=True,
        callback_allow_http=True,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRGATE_")}
    env.update(
        AIRGATE_DATABASE_URL=settings.database_url,
        AIRGATE_REDIS_URL=args.redis,
        AIRGATE_PIN_PEPPER=PEPPER,
        AIRGATE_VAR_DIR=str(var),
        AIRGATE_CALLBACK_ALLOW_PRIVATE="true",
        AIRGATE_CALLBACK_ALLOW_HTTP="true",
        AIRGATE_LOG_LEVEL="WARNING",
    )
    runner, receiver_url, _got = await receiver()
    try:
        async with open_core(settings) as core:
            await upgrade(core.engine)
            await seed_demo(core, retailers=args.retailers)
            async with core.sessions() as session:
                parties = (await session.execute(select(col(Party.id), col(Party.role)))).all()
            shops = [i or 0 for i, role in parties if role == Role.RETAILER]
            told = [i or 0 for i, role in parties if role in (Role.RETAILER, Role.DISTRIBUTOR)]
            ids = await final_topups(core, shops, args.deliveries // 2 + 1)
            none = await owe_cost(core, ids, args.batches)
            for party_id in told:
                await callbacks.register(
                    core, actor=Actor.system(), party_id=party_id, url=f"{receiver_url}/{party_id}"
                )
            both = await owe_cost(core, ids, args.batches)
            queue = await JobQueue.connect(args.redis)
            try:
                sent = await deliveries(core, queue, ids, env)
            finally:
                await queue.close()
    finally:
        await runner.cleanup()
    return {"owe_no_endpoint": none, "owe_two_endpoints": both, "deliveries": sent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=4000)
    parser.add_argument("--batches", type=int, default=500)
    parser.add_argument("--retailers", type=int, default=64)
    parser.add_argument("--json", action="store_true")
    add_server_flags(parser)
    args = parser.parse_args()
    note_load()
    result = asyncio.run(run(args))
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    a, b, d = result["owe_no_endpoint"], result["owe_two_endpoints"], result["deliveries"]
    sys.stdout.write(
        f"outbox in the finishing transaction, batch of {BATCH}: no endpoint "
        f"p50 {a['p50_ms']:.2f} ms p99 {a['p99_ms']:.2f} ms; retailer + distributor registered "
        f"p50 {b['p50_ms']:.2f} ms p99 {b['p99_ms']:.2f} ms\n"
        f"deliveries: {d['deliveries']} at {d['per_s']:.0f}/s, commit to 200 recorded "
        f"p50 {d['p50_ms']:.0f} ms p99 {d['p99_ms']:.0f} ms\n"
    )


if __name__ == "__main__":
    main()
