"""Telegram: updates/s through the webhook into the shared core and back, and a broadcast's rate.

**Updates.** ``airgate serve`` runs as its own process on PostgreSQL and Redis with the bot on,
its Bot API pointed at the fake Bot API server of sandbox/telegram_api.py (run in this process,
flood limits off: we measure our side). ``--users`` linked retailers each play, again and again,
the balance journey as Telegram would deliver it to ``POST /telegram/webhook`` (with the secret
header): press "My balance" (a callback: the menu message is edited), type the PIN (a message: it is
deleted, the balance is sent), press "00" (back to the menu, edited). Each webhook call returns once
the update was handled and its replies were made, so the call's time is the update's latency.
Reported: updates/s, p50/p99, and the server process's CPU per update.

**Broadcast.** ``airgate worker`` as its own process, the fake Bot API's limits on (30 accepted
sends a second overall, 1 per chat, 429 with ``retry_after`` beyond); one broadcast to
``--recipients`` retailers linked to Telegram, enqueued as the bot's confirmation does. Reported:
the achieved rate (recipients ÷ the time from the first to the last accepted send) against the
30/s ceiling, 429s received, the most sends the fake accepted in any one second, and any repeat.

The database ``airgate_bench_tg`` is dropped and created again (through ``test``); the Redis
database of ``--redis`` is flushed (the tests use 1-15).

Run:  .venv/bin/python bench/bot_telegram.py [--users 32] [--seconds 20] [--warmup 5]
      [--recipients 1000] [--only updates|broadcast] [--pg …] [--redis …] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from asyncio.subprocess import DEVNULL, Process
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

import aiohttp
from _common import (
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
from rich.console import Console
from rich.table import Table

from sandbox.telegram_api import FakeTelegram

BENCH_DB = "airgate_bench_tg"
HOOK_SECRET = "bench-hook-secret"
USER_BASE = 800_000  # retailer i's Telegram user id: USER_BASE + i
DEMO_PIN = "1234"


def env_for(
    args: argparse.Namespace, var_dir: Path, fake: FakeTelegram, port: int
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRGATE_")}
    env.update(
        AIRGATE_DATABASE_URL=pg_url(args.pg, BENCH_DB),
        AIRGATE_REDIS_URL=args.redis,
        AIRGATE_VAR_DIR=str(var_dir),
        AIRGATE_PIN_PEPPER=PEPPER,
        AIRGATE_LOG_LEVEL="WARNING",
        AIRGATE_HTTP_HOST="127.0.0.1",
        AIRGATE_HTTP_PORT=str(port),
        AIRGATE_TELEGRAM_TOKEN=fake.token,
        AIRGATE_TELEGRAM_API_URL=fake.base_url,
        AIRGATE_TELEGRAM_WEBHOOK_SECRET=HOOK_SECRET,
    )
    return env


async def prepare(args: argparse.Namespace, var_dir: Path, retailers: int) -> None:
    """A fresh database, seeded, every retailer linked to a Telegram user."""
    from sqlalchemy import String, cast, insert, literal, select
    from sqlmodel import col

    from core.context import open_core
    from core.db import upgrade
    from core.models import Party, PartyIdentity, Role
    from core.services.seed import seed_demo
    from core.settings import load_settings

    await recreate_database(args.pg, BENCH_DB)
    await flush_redis(args.redis)
    settings = load_settings(
        database_url=pg_url(args.pg, BENCH_DB), var_dir=var_dir, pin_pepper=PEPPER
    )
    async with open_core(settings) as core:
        await upgrade(core.engine)
        await seed_demo(core, retailers=retailers)
        async with core.transaction() as session:
            retailers = select(
                literal("telegram"), cast(USER_BASE + col(Party.id), String), col(Party.id)
            ).where(col(Party.role) == Role.RETAILER)
            await session.execute(
                insert(PartyIdentity).from_select(["channel", "external_id", "party_id"], retailers)
            )


async def retailer_users(args: argparse.Namespace) -> list[int]:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(pg_url(args.pg, BENCH_DB))
    try:
        rows = await conn.fetch(
            "SELECT i.external_id FROM party_identity i JOIN party p ON p.id = i.party_id"
            " WHERE p.role = 'retailer' AND i.channel = 'telegram' ORDER BY p.id"
        )
    finally:
        await conn.close()
    return [int(r[0]) for r in rows]


# -- updates ------------------------------------------------------------------------------------


@dataclass
class Updates:
    users: int
    seconds: float
    updates: int
    errors: int
    per_s: float
    p50_ms: float
    p99_ms: float
    server_cpu_ms_per_update: float


async def updates(args: argparse.Namespace, var_dir: Path) -> Updates:
    await prepare(args, var_dir, retailers=max(args.users, 8))
    users = (await retailer_users(args))[: args.users]
    async with FakeTelegram(limits=False) as fake:
        port = free_port()
        env = env_for(args, var_dir, fake, port)
        proc = await asyncio.create_subprocess_exec(
            AIRGATE, "serve", env=env, stdout=DEVNULL, stderr=DEVNULL
        )
        base = f"http://127.0.0.1:{port}"
        try:
            await wait_http(f"{base}/health", proc)
            return await _drive(args, fake, proc, f"{base}/telegram/webhook", users)
        finally:
            await stop([proc])


async def _drive(
    args: argparse.Namespace, fake: FakeTelegram, proc: Process, url: str, users: list[int]
) -> Updates:
    headers = {"X-Telegram-Bot-Api-Secret-Token": HOOK_SECRET}
    latencies: list[float] = []
    errors = 0
    measuring = False

    async def post(http: aiohttp.ClientSession, update: dict[str, Any]) -> None:
        nonlocal errors
        t0 = time.perf_counter()
        async with http.post(url, json=update, headers=headers) as resp:
            await resp.read()
            if resp.status != 200:
                errors += 1
        if measuring:
            latencies.append(time.perf_counter() - t0)

    async def play(http: aiohttp.ClientSession, user: int, until: float) -> None:
        await post(http, fake.user_command(user, "/menu"))
        while time.monotonic() < until:
            await post(http, fake.press(user, "My balance"))
            await post(http, fake.user_message(user, DEMO_PIN))
            if not (fake.last(user).text or "").startswith("Your balance:"):
                nonlocal errors
                errors += 1
            await post(http, fake.user_command(user, "/menu"))

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        warm = time.monotonic() + args.warmup
        await asyncio.gather(*(play(http, u, warm) for u in users))
        measuring = True
        cpu0, t0 = cpu_s([proc.pid]), time.monotonic()
        until = t0 + args.seconds
        await asyncio.gather(*(play(http, u, until) for u in users))
        elapsed = time.monotonic() - t0
        cpu = cpu_s([proc.pid]) - cpu0
    n = len(latencies)
    return Updates(
        users=len(users),
        seconds=round(elapsed, 1),
        updates=n,
        errors=errors,
        per_s=round(n / elapsed, 1),
        p50_ms=round(pct(latencies, 0.5), 1),
        p99_ms=round(pct(latencies, 0.99), 1),
        server_cpu_ms_per_update=round(cpu * 1000 / max(n, 1), 2),
    )


# -- broadcast ----------------------------------------------------------------------------------


@dataclass
class Rate:
    recipients: int
    sent: int
    repeats: int
    seconds: float
    per_s: float
    ceiling_per_s: int
    throttled_429: int
    max_in_one_second: int
    max_per_chat_in_one_second: int


async def broadcast_rate(args: argparse.Namespace, var_dir: Path) -> Rate:
    from sqlalchemy import select
    from sqlmodel import col

    from core.context import open_core
    from core.jobs.queue import JobQueue
    from core.models import Party, Role
    from core.services import broadcast
    from core.services.audit import Actor
    from core.settings import load_settings

    await prepare(args, var_dir, retailers=args.recipients)
    async with FakeTelegram() as fake:  # limits on: 30/s overall, 1/s per chat
        env = env_for(args, var_dir, fake, free_port())
        settings = load_settings(
            database_url=pg_url(args.pg, BENCH_DB),
            redis_url=args.redis,
            var_dir=var_dir,
            pin_pepper=PEPPER,
            telegram_token=fake.token,
        )
        async with open_core(settings) as core:
            async with core.sessions() as session:
                distributor = (
                    await session.execute(select(Party).where(col(Party.role) == Role.DISTRIBUTOR))
                ).scalar_one()
            created = await broadcast.create(
                core,
                distributor_id=distributor.id or 0,
                text="New Safaricom stock in: buy now",
                audience=broadcast.Audience("all"),
                key="bench",
                actor=Actor.cli(),
            )
            queue = await JobQueue.connect(args.redis)
            await queue.broadcast(created.id)
            await queue.close()
            worker = await asyncio.create_subprocess_exec(
                AIRGATE, "worker", env=env, stdout=DEVNULL, stderr=DEVNULL
            )
            try:
                deadline = time.monotonic() + args.recipients / 10 + 60
                while not (await broadcast.report(core, created.id)).done:
                    if time.monotonic() > deadline:
                        raise SystemExit("the broadcast did not finish")
                    await asyncio.sleep(0.5)
            finally:
                await stop([worker])
        sends = [c for c in fake.calls_to("sendMessage") if c.ok]
        chats = Counter(c.params["chat_id"] for c in sends)
        span = sends[-1].at - sends[0].at if len(sends) > 1 else 0.0
        return Rate(
            recipients=created.preview.total,
            sent=len(sends),
            repeats=sum(n - 1 for n in chats.values()),
            seconds=round(span, 1),
            per_s=round((len(sends) - 1) / span, 1) if span else 0.0,
            ceiling_per_s=fake.global_per_s,
            throttled_429=fake.rate_limited,
            max_in_one_second=fake.max_global_rate(),
            max_per_chat_in_one_second=fake.max_chat_rate(),
        )


def render(results: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(results, indent=2))
        return
    console = Console()
    for name, result in results.items():
        table = Table(title=name)
        table.add_column("figure")
        table.add_column("value", justify="right")
        for key, value in result.items():
            table.add_row(key, str(value))
        console.print(table)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    note_load()
    var_dir = Path(mkdtemp(prefix="ag-bench-tg-"))
    results: dict[str, Any] = {}
    try:
        if args.only in (None, "updates"):
            results["updates through the webhook"] = asdict(await updates(args, var_dir))
        if args.only in (None, "broadcast"):
            results["broadcast rate"] = asdict(await broadcast_rate(args, var_dir))
    finally:
        await flush_redis(args.redis)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--recipients", type=int, default=1000)
    parser.add_argument("--only", choices=["updates", "broadcast"])
    parser.add_argument("--json", action="store_true")
    add_server_flags(parser)
    args = parser.parse_args()
    render(asyncio.run(main_async(args)), args.json)


if __name__ == "__main__":
    main()
