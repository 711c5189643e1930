"""Reconciling a day: ``airgate reconcile --date D`` over N top-ups, its wall time and peak memory.

On PostgreSQL, with ``airgate sandbox`` as the aggregator (its own process): the day's N top-ups
are inserted as delivered rows directly, and the sandbox is given the matching N transactions
(``POST /sandbox/import``) with a few of each mismatch among them (an amount, a status, a missing
one, one not ours). Then ``airgate reconcile --date D --json`` runs as its own process, as an
operator runs it: its wall time, its peak resident memory (``wait4``'s ``ru_maxrss``) and its
CPU time are reported, with the classes it found (checked against what was injected). It is run
twice: the second run must open no case. ``--sizes`` runs several day sizes, to show the memory
does not grow with the day.

Run:  .venv/bin/python bench/reconcile.py [--sizes 10000,100000] [--mismatches 5]
      [--pg /var/run/postgresql | postgresql://postgres@127.0.0.1:5432]
      [--redis redis://127.0.0.1:6379/0] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import insert, select, text
from sqlmodel import col

from core.context import open_core
from core.db import upgrade
from core.models import Party, Product, Role, Topup
from core.services.reconcile import day_window
from core.services.seed import seed_demo
from core.settings import load_settings

from _common import (  # isort: skip (bench/, the script's own folder)
    AIRGATE,
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

DAY = date(2026, 12, 1)
DB = "airgate_bench_recon"
CHUNK = 5_000


def _env(database_url: str, redis_url: str, sandbox: str, var_dir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRGATE_")}
    env |= {
        "AIRGATE_DATABASE_URL": database_url,
        "AIRGATE_REDIS_URL": redis_url,
        "AIRGATE_PROVIDER_URL": sandbox,
        "AIRGATE_PROVIDER_AUTH_URL": sandbox,
        "AIRGATE_SMS_URL": sandbox,
        "AIRGATE_PIN_PEPPER": PEPPER,
        "AIRGATE_VAR_DIR": var_dir,
    }
    return env


async def _fill(database_url: str, sandbox: str, size: int, bad: int, var_dir: str) -> None:
    """N delivered top-ups of the day in our database, and their transactions at the sandbox,
    ``bad`` of each mismatch among them."""
    settings = load_settings(database_url=database_url, var_dir=Path(var_dir), pin_pepper=PEPPER)
    start, end = day_window(DAY, settings.timezone)
    step = (end - start) / size
    async with open_core(settings) as core:
        await upgrade(core.engine)
        await seed_demo(core, retailers=8)
        async with core.sessions() as session:
            shops = list(
                (
                    await session.execute(
                        select(col(Party.id)).where(col(Party.role) == Role.RETAILER)
                    )
                ).scalars()
            )
            product = (
                await session.execute(
                    select(col(Product.code)).where(
                        col(Product.operator_code) == "safaricom-ke", col(Product.kind) == "airtime"
                    )
                )
            ).scalar_one()
        rows: list[dict[str, Any]] = []
        txs: list[dict[str, Any]] = []
        async with aiohttp.ClientSession() as http:
            for n in range(size):
                at = start + step * n
                topup_id = f"B{n:015d}"
                msisdn = f"+25471{n % 10_000_000:07d}"
                rows.append(
                    {
                        "id": topup_id, "party_id": shops[n % len(shops)], "msisdn": msisdn,
                        "operator_code": "safaricom-ke", "product_code": product,
                        "kind": "airtime", "amount_minor": 5_000, "currency": "KES",
                        "channel": "bench", "state": "delivered", "due_at": at,
                        "created_at": at, "final_at": at, "provider_ref": str(n + 1),
                    }
                )  # fmt: skip
                amount, status = 50, "SUCCESSFUL"
                if n < bad:
                    amount = 60  # an amount mismatch
                elif n < 2 * bad:
                    status = "FAILED"  # we delivered, it failed
                if not 2 * bad <= n < 3 * bad:  # 3rd group: missing at the aggregator
                    txs.append(
                        {"reference": topup_id, "recipient": msisdn, "amount": amount,
                         "status": status, "at": _utc(at + timedelta(seconds=1))}
                    )  # fmt: skip
                if len(rows) >= CHUNK:
                    await _flush(core, http, sandbox, rows, txs)
                    rows, txs = [], []
            for n in range(bad):  # not ours
                txs.append(
                    {"reference": None, "recipient": "+254712345678", "amount": 75,
                     "status": "SUCCESSFUL", "at": _utc(start + timedelta(hours=1, seconds=n))}
                )  # fmt: skip
            await _flush(core, http, sandbox, rows, txs)
        async with core.transaction() as session:  # as autovacuum leaves a table in service
            await session.execute(text("ANALYZE topup"))


def _utc(at: Any) -> str:
    from datetime import UTC

    return str(at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"))


async def _flush(
    core: Any, http: aiohttp.ClientSession, sandbox: str, rows: list[Any], txs: list[Any]
) -> None:
    if rows:
        async with core.transaction() as session:
            await session.execute(insert(Topup), rows)
    if txs:
        async with http.post(f"{sandbox}/sandbox/import", json={"transactions": txs}) as resp:
            assert resp.status == 200, await resp.text()


def _run_reconcile(env: dict[str, str], cwd: str) -> dict[str, Any]:
    """``airgate reconcile`` as its own process: wall time, peak RSS (ru_maxrss), CPU, report."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [AIRGATE, "reconcile", "--date", DAY.isoformat(), "--json"],
            env=env, cwd=cwd, stdout=out, stderr=err,
        )  # fmt: skip
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall_s = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"reconcile exited {proc.returncode}: {err.read().decode()[-2000:]}")
        [report] = json.loads(out.read())  # one aggregator account
    return {
        "wall_s": round(wall_s, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "report": report,
    }


async def _one(args: argparse.Namespace, size: int) -> dict[str, Any]:
    await recreate_database(args.pg, DB)
    await flush_redis(args.redis)
    database_url = pg_url(args.pg, DB)
    port = free_port()
    sandbox = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as var_dir:
        env = _env(database_url, args.redis, sandbox, var_dir)
        proc = await asyncio.create_subprocess_exec(
            AIRGATE, "sandbox", "--port", str(port), env=env, cwd=var_dir,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await wait_http(f"{sandbox}/sandbox/stats", proc)
            filled = time.perf_counter()
            await _fill(database_url, sandbox, size, args.mismatches, var_dir)
            fill_s = time.perf_counter() - filled
            first = await asyncio.to_thread(_run_reconcile, env, var_dir)
            second = await asyncio.to_thread(_run_reconcile, env, var_dir)
        finally:
            await stop([proc])
    classes = {k: v["count"] for k, v in first["report"]["classes"].items()}
    bad = args.mismatches
    expected = {"matched": size - 3 * bad, "amount_mismatch": bad, "status_mismatch": bad}
    expected |= {"missing_at_aggregator": bad, "unknown_to_us": bad}
    assert {k: classes[k] for k in expected} == expected, classes
    assert second["report"]["cases_opened"] == 0, second["report"]
    return {
        "topups": size,
        "fill_s": round(fill_s, 1),
        "first": {k: v for k, v in first.items() if k != "report"},
        "second": {k: v for k, v in second.items() if k != "report"},
        "classes": classes,
        "cases_opened": first["report"]["cases_opened"],
        "at_stake_minor": first["report"]["at_stake_minor"],
        "pulled": first["report"]["pulled"],
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000", help="top-ups in the day, comma-separated")
    parser.add_argument("--mismatches", type=int, default=5, help="of each kind")
    parser.add_argument("--json", action="store_true")
    add_server_flags(parser)
    args = parser.parse_args()
    note_load()
    results = [await _one(args, int(size)) for size in args.sizes.split(",")]
    if args.json:
        sys.stdout.write(json.dumps(results, indent=2) + "\n")
        return
    for r in results:
        print(
            f"{r['topups']:>7,} top-ups: first run {r['first']['wall_s']} s, peak RSS "
            f"{r['first']['peak_rss_mb']} MB, CPU {r['first']['cpu_s']} s; second run "
            f"{r['second']['wall_s']} s, {r['second']['peak_rss_mb']} MB; "
            f"classes {r['classes']}; cases {r['cases_opened']}; load {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
