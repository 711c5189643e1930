"""Failover: top-ups at a steady rate through two aggregator accounts, the first one failing
half-way. Delivered/s before and after, and how long the switch took.

On PostgreSQL and Redis, with two ``airgate sandbox`` processes ("alpha", "beta", no digit rules)
and one ``airgate worker`` routing between them (AIRGATE_PROVIDERS; alpha first). This process
offers ``--rate`` top-ups/s (open loop: confirm_topup, what a channel does after the PIN) for
``--seconds``; half-way alpha fails:

- ``--failure hang`` (default): alpha is stopped (SIGSTOP): sends time out (unknown outcomes,
  which must stay with alpha), until its breaker opens and the rest go to beta. At the end alpha
  is resumed (SIGCONT) and the held top-ups are resolved there by status queries.
- ``--failure down``: alpha's process is killed: connections are refused (not sent), so each
  top-up goes on to beta at once until the breaker opens. Top-ups in flight at the kill stay with
  alpha (their outcome unknown: alpha is gone), reported as held.

Reported: delivered/s in the steady window before the failure and after the switch; time to
switch (failure → alpha's breaker open; failure → first top-up delivered by beta; failure →
delivered/s back to 90 % of before); top-ups held by alpha at the failure. After the run: every
top-up final (hang), each sandbox's delivered count equals ours for that account, no double
delivery, the ledger verifies.

Run:  .venv/bin/python bench/failover.py [--rate 10] [--seconds 40] [--failure hang|down]
      [--latency-ms 50] [--timeout-s 2] [--pg …] [--redis …] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import tempfile
import time
from asyncio.subprocess import DEVNULL, Process
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis
from sqlalchemy import func, select
from sqlmodel import col

from core.context import Core, open_core
from core.db import upgrade
from core.jobs.queue import JobQueue
from core.models import Party, Role, Topup, TopupState
from core.routing.health import key as breaker_key
from core.services.seed import seed_demo
from core.services.topups import confirm_topup
from core.services.verify import verify_ledger
from core.settings import load_settings

from _common import (  # isort: skip (bench/, the script's own folder)
    AIRGATE,
    BENCH_POOL,
    PEPPER,
    add_server_flags,
    flush_redis,
    free_port,
    note_load,
    pg_url,
    recreate_database,
    stop,
    wait_http,
)

BENCH_DB = "airgate_bench_failover"
CHANNEL = "bench-failover"
OPERATOR = "safaricom-ke"


@dataclass
class Result:
    rate: int
    seconds: int
    failure: str
    latency_ms: int
    timeout_s: float
    offered: int
    before_per_s: float  # delivered/s, steady window before the failure
    after_per_s: float  # delivered/s, steady window after the switch
    breaker_open_s: float | None  # failure → alpha's breaker open
    first_via_beta_s: float | None  # failure → first top-up delivered by beta
    recovered_s: float | None  # failure → delivered/s back to 90 % of before (1 s buckets)
    held_by_alpha: int  # top-ups alpha held (unknown) at the failure
    delivered_alpha: int
    delivered_beta: int
    failed: int
    still_open: int


async def start(*args: str, env: dict[str, str]) -> Process:
    return await asyncio.create_subprocess_exec(
        AIRGATE, *args, env=env, stdout=DEVNULL, stderr=DEVNULL
    )


async def stats(url: str) -> dict[str, int]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/sandbox/stats") as resp:
        body: dict[str, int] = await resp.json()
        return body


async def run(core: Core, args: argparse.Namespace, redis_url: str, var_dir: Path) -> Result:
    ports = {"alpha": free_port(), "beta": free_port()}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    accounts = [
        {"name": name, "url": url, "key": "sandbox", "secret": "sandbox"}
        for name, url in urls.items()
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRGATE_")}
    env.update(
        AIRGATE_DATABASE_URL=core.settings.database_url,
        AIRGATE_REDIS_URL=redis_url,
        AIRGATE_VAR_DIR=str(var_dir),
        AIRGATE_PIN_PEPPER=PEPPER,
        AIRGATE_PROVIDERS=json.dumps(accounts),
        AIRGATE_SMS_URL=urls["beta"],
        AIRGATE_PROVIDER_TIMEOUT_S=str(args.timeout_s),
        AIRGATE_PROVIDER_CONNECT_TIMEOUT_S="1",
        AIRGATE_TOPUP_STATUS_BACKOFF_S="1,2",
        AIRGATE_LOG_LEVEL="WARNING",
        **BENCH_POOL,
    )
    await flush_redis(redis_url)
    sandboxes = {
        name: await start(
            "sandbox",
            "--port",
            str(ports[name]),
            "--latency-ms",
            str(args.latency_ms),
            "--no-digit-rules",
            env=env,
        )  # fmt: skip
        for name in ports
    }
    procs = list(sandboxes.values())
    redis = aioredis.Redis.from_url(redis_url)
    try:
        for name, url in urls.items():
            await wait_http(f"{url}/sandbox/stats", sandboxes[name], timeout_s=60)
        procs.append(await start("worker", env=env))
        async with core.sessions() as session:
            shops = list(
                (
                    await session.execute(
                        select(col(Party.id)).where(col(Party.role) == Role.RETAILER)
                    )
                ).scalars()
            )
        queue = await JobQueue.connect(redis_url)
        await warm_up(core, queue, shops[0] or 0)  # the worker is up before the clock starts
        rng = random.Random(7)
        total = args.rate * args.seconds
        fail_at = 0.0
        t0 = time.time()

        async def fail() -> None:
            nonlocal fail_at
            await asyncio.sleep(args.seconds / 2)
            fail_at = time.time()
            if args.failure == "hang":
                sandboxes["alpha"].send_signal(signal.SIGSTOP)
            else:
                sandboxes["alpha"].kill()

        async def one(i: int) -> None:
            await confirm_topup(
                core,
                queue,
                party_id=shops[i % len(shops)] or 0,
                msisdn=f"07{rng.choice('12')}{rng.randrange(10**7):07d}",  # Safaricom
                amount_minor=rng.randrange(10, 60) * 100,
                channel=CHANNEL,
            )

        failing = asyncio.create_task(fail())
        tasks = []
        for i in range(total):
            if (wait := t0 + i / args.rate - time.time()) > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks, failing)
        offered_until = time.time()
        await asyncio.sleep(args.timeout_s + 3)  # the last ones settle
        held = await count(core, provider="alpha", state=TopupState.UNKNOWN)
        raw = await redis.hget(breaker_key("alpha", OPERATOR), "opened_ms")
        breaker_open_s = int(raw) / 1000 - fail_at if raw else None
        rows = await timeline(core)
        if args.failure == "hang":
            sandboxes["alpha"].send_signal(signal.SIGCONT)
            await wait_final(core, total, timeout_s=120)
        await queue.close()
        return await summarise(
            core, args, rows, urls, t0=t0, fail_at=fail_at, until=offered_until,
            breaker_open_s=breaker_open_s, held=held, offered=total,
        )  # fmt: skip
    finally:
        if args.failure == "hang" and sandboxes["alpha"].returncode is None:
            sandboxes["alpha"].send_signal(signal.SIGCONT)
        await redis.aclose()
        await stop(procs, timeout_s=20)


async def warm_up(core: Core, queue: JobQueue, shop: int) -> None:
    """One top-up through the worker (another channel: not counted), waited for."""
    topup = await confirm_topup(
        core, queue, party_id=shop, msisdn="0712000000", amount_minor=1_000, channel="warm-up"
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        async with core.sessions() as session:
            row = await session.get(Topup, topup.id)
        if row is not None and row.state == TopupState.DELIVERED:
            return
        await asyncio.sleep(0.2)
    raise SystemExit("the worker delivered nothing in 120 s")


async def count(core: Core, *, provider: str, state: str) -> int:
    async with core.sessions() as session:
        return int(
            (
                await session.execute(
                    select(func.count()).where(
                        col(Topup.channel) == CHANNEL,
                        col(Topup.provider) == provider,
                        col(Topup.state) == state,
                    )
                )
            ).scalar_one()
        )


async def timeline(
    core: Core, channel: str | None = CHANNEL
) -> list[tuple[datetime, datetime | None, str | None, str]]:
    query = select(
        col(Topup.created_at), col(Topup.final_at), col(Topup.provider), col(Topup.state)
    )
    if channel is not None:
        query = query.where(col(Topup.channel) == channel)
    async with core.sessions() as session:
        found = await session.execute(query)
        return [tuple(row) for row in found]  # type: ignore[misc]


async def wait_final(core: Core, total: int, *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        async with core.sessions() as session:
            final = (
                await session.execute(
                    select(func.count()).where(
                        col(Topup.channel) == CHANNEL,
                        col(Topup.state).in_((TopupState.DELIVERED, TopupState.FAILED)),
                    )
                )
            ).scalar_one()
        if final >= total:
            return
        await asyncio.sleep(0.5)


async def summarise(
    core: Core,
    args: argparse.Namespace,
    rows: list[tuple[datetime, datetime | None, str | None, str]],
    urls: dict[str, str],
    *,
    t0: float,
    fail_at: float,
    until: float,
    breaker_open_s: float | None,
    held: int,
    offered: int,
) -> Result:
    delivered = [(f.timestamp(), p) for _c, f, p, s in rows if s == TopupState.DELIVERED and f]
    warm = 2.0  # the first seconds of each phase are not steady

    def per_s(start: float, end: float) -> float:
        return sum(start <= f < end for f, _p in delivered) / max(end - start, 1e-9)

    before = per_s(t0 + warm, fail_at)
    via_beta = sorted(
        f.timestamp() for _c, f, p, s in rows
        if p == "beta" and s == TopupState.DELIVERED and f and f.timestamp() >= fail_at
    )  # fmt: skip
    first_beta = via_beta[0] - fail_at if via_beta else None
    # Back to 90 % of before: the first 1 s window, from beta's first delivery on, that is.
    recovered = None
    second = via_beta[0] if via_beta else until
    while second < until:
        if per_s(second, second + 1) >= 0.9 * before:
            recovered = second - fail_at
            break
        second += 0.25
    switch = fail_at + (recovered if recovered is not None else 0.0)
    after = per_s(switch + warm, until)
    final = await timeline(core)
    everything = await timeline(core, channel=None)  # with the warm-up, as the sandboxes count
    ours = {
        name: sum(p == name and s == TopupState.DELIVERED for _c, _f, p, s in everything)
        for name in urls
    }
    failed = sum(s == TopupState.FAILED for *_r, s in final)
    still_open = sum(s not in (TopupState.DELIVERED, TopupState.FAILED) for *_r, s in final)
    for name, url in urls.items():
        if args.failure == "down" and name == "alpha":
            continue  # its records died with it
        theirs = await stats(url)
        if theirs["delivered"] != ours[name] or theirs["double_deliveries"]:
            raise SystemExit(f"{name} delivered {theirs['delivered']}, we say {ours[name]}")
    async with core.sessions() as session:
        report = await verify_ledger(session)
    if not report.ok:
        raise SystemExit(f"ledger verify failed: {report.problems[:5]}")
    return Result(
        rate=args.rate,
        seconds=args.seconds,
        failure=args.failure,
        latency_ms=args.latency_ms,
        timeout_s=args.timeout_s,
        offered=offered,
        before_per_s=before,
        after_per_s=after,
        breaker_open_s=breaker_open_s,
        first_via_beta_s=first_beta,
        recovered_s=recovered,
        held_by_alpha=held,
        delivered_alpha=ours["alpha"],
        delivered_beta=ours["beta"],
        failed=failed,
        still_open=still_open,
    )


async def bench(args: argparse.Namespace) -> Result:
    await recreate_database(args.pg, BENCH_DB)
    with tempfile.TemporaryDirectory(prefix="ag-bench-") as tmp:
        settings = load_settings(
            database_url=pg_url(args.pg, BENCH_DB),
            redis_url=args.redis,
            var_dir=Path(tmp),
            pin_pepper=PEPPER,
            topup_daily_limit_minor=10**12,
            topup_repeat_window_s=0,
        )
        async with open_core(settings) as core:
            await upgrade(core.engine)
            await seed_demo(core, retailers=args.retailers)
            return await run(core, args, args.redis, Path(tmp))


def render(r: Result) -> None:
    def s(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} s"

    print(f"Failover ({r.failure}) at {r.rate}/s offered for {r.seconds} s, sandbox latency "
          f"{r.latency_ms} ms, provider time-out {r.timeout_s} s; {r.offered} top-ups")  # fmt: skip
    print(f"  delivered/s before the failure: {r.before_per_s:.1f}")
    print(f"  delivered/s after the switch:   {r.after_per_s:.1f}")
    print(f"  failure → alpha's breaker open: {s(r.breaker_open_s)}")
    print(f"  failure → first top-up delivered by beta: {s(r.first_via_beta_s)}")
    print(f"  failure → delivered/s back to 90 % of before: {s(r.recovered_s)}")
    print(f"  held by alpha (unknown) at the failure: {r.held_by_alpha}")
    print(f"  delivered by alpha {r.delivered_alpha}, by beta {r.delivered_beta} (with the "
          "warm-up top-up), failed "
          f"{r.failed}, still open {r.still_open}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=10, help="top-ups/s offered")
    parser.add_argument("--seconds", type=int, default=40, help="how long they are offered")
    parser.add_argument("--failure", choices=("hang", "down"), default="hang")
    parser.add_argument("--latency-ms", type=int, default=50, help="each sandbox's latency")
    parser.add_argument("--timeout-s", type=float, default=2.0, help="AIRGATE_PROVIDER_TIMEOUT_S")
    parser.add_argument("--retailers", type=int, default=64)
    add_server_flags(parser)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    note_load()
    result = asyncio.run(bench(args))
    if args.json:
        print(json.dumps(asdict(result), indent=2))
    else:
        render(result)


if __name__ == "__main__":
    main()
