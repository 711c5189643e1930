"""Back office: the daily report over 2,000 retailers and 50,000 top-ups, and a month's settlement.

For each database (PostgreSQL, SQLite) it builds one day of a platform, one distributor and
``--retailers`` retailers with ``--topups`` top-ups (80% delivered, 10% failed, 10% unknown, at
random hours) and their ledger transfers (reserve and capture or release), each retailer buying
stock twice (sale and payment) and depositing once: rows written in bulk, not through the services
(the figures measure the reads). Then it times, best of ``--repeat``:

* ``everyone``: every party's day (the `airgate report daily` table);
* ``detail``: the distributor's report (products, hours, week, its retailers ranked);
* ``chart``: drawing its PNG;
* ``settle``: settling the month for every pair (distributor-retailer and platform-distributor),
  once, then ``show`` (regenerating one run's CSV and PDF).

Run:  .venv/bin/python bench/backoffice.py [--retailers 2000] [--topups 50000] [--repeat 3]
      [--only postgres|sqlite] [--pg postgresql://postgres@127.0.0.1:5432]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from _common import note_load, pg_url, recreate_database
from rich.console import Console
from rich.table import Table
from sqlalchemy import insert, select

from core.context import Core, open_core
from core.db import upgrade
from core.models import Account, Agreement, Party, Topup, Transfer
from core.services.audit import Actor
from core.services.catalog import demo_catalog_text, load_catalog
from core.services.daily import charts
from core.services.daily.detail import detail
from core.services.daily.figures import everyone
from core.services.settlement import runs
from core.settings import load_settings

DAY = date(2026, 11, 17)
ZONE = "Africa/Nairobi"
BENCH_DB = "airgate_bench_backoffice"
PEPPER = "bench-pepper-0123456789abcdef"
OPERATORS = ["safaricom-ke", "airtel-ke", "telkom-ke"]
CHUNK = 2_000


async def _bulk(core: Core, table: Any, rows: list[dict[str, Any]]) -> None:
    async with core.transaction() as session:
        for start in range(0, len(rows), CHUNK):
            await session.execute(insert(table), rows[start : start + CHUNK])


async def _ids(core: Core, query: Any) -> list[Any]:
    async with core.sessions() as session:
        return list((await session.execute(query)).all())


async def build(core: Core, *, retailers: int, topups: int) -> int:
    """The day's rows; the distributor's id."""
    await load_catalog(core, text=demo_catalog_text(), actor=Actor.cli())
    party_t, account_t = Party.__table__, Account.__table__  # type: ignore[attr-defined]
    await _bulk(core, party_t, [
        {"role": "platform", "name": "Platform", "msisdn": "+254799999999", "status": "active",
         "language": "en", "pin_failed_attempts": 0, "pin_locked": False,
         "credit_limit_minor": 0, "created_at": datetime.now(UTC)},
    ])  # fmt: skip
    [(platform,)] = await _ids(core, select(party_t.c.id).where(party_t.c.role == "platform"))
    await _bulk(core, party_t, [
        {"role": "distributor", "name": "Distributor", "msisdn": "+254700900000",
         "parent_id": platform, "status": "active", "language": "en", "pin_failed_attempts": 0,
         "pin_locked": False, "credit_limit_minor": 0, "created_at": datetime.now(UTC)},
    ])  # fmt: skip
    [(dist,)] = await _ids(core, select(party_t.c.id).where(party_t.c.role == "distributor"))
    await _bulk(core, party_t, [
        {"role": "retailer", "name": f"Shop {n:05d}", "msisdn": f"+2547{n:08d}",
         "parent_id": dist, "status": "active", "language": "en", "pin_failed_attempts": 0,
         "pin_locked": False, "credit_limit_minor": 1_000_000, "created_at": datetime.now(UTC)}
        for n in range(1, retailers + 1)
    ])  # fmt: skip
    retail = select(party_t.c.id).where(party_t.c.role == "retailer").order_by(party_t.c.id)
    shops = [pid for (pid,) in await _ids(core, retail)]
    await _bulk(core, Agreement.__table__, [  # type: ignore[attr-defined]
        {"seller_id": dist, "buyer_id": s, "operator_code": "*", "discount_bps": 200,
         "commission_bps": 50} for s in shops
    ] + [{"seller_id": platform, "buyer_id": dist, "operator_code": "*", "discount_bps": 300,
          "commission_bps": None}])  # fmt: skip
    accounts = []
    for owner in [dist, *shops]:
        for kind, asset in [("main", f"AIRTIME:{op}") for op in OPERATORS] + [
            ("inflight", f"AIRTIME:{op}") for op in OPERATORS] + [
            ("sold", f"AIRTIME:{op}") for op in OPERATORS] + [
            ("main", "CASH:KES"), ("credit", "CASH:KES")]:  # fmt: skip
            accounts.append({"code": f"p{owner}:{kind}:{asset}", "party_id": owner,
                             "asset": asset, "kind": kind, "is_system": False,
                             "balance_minor": random.randrange(0, 500_000)})  # fmt: skip
    accounts.append({"code": "sys:deposits:CASH:KES", "party_id": None, "asset": "CASH:KES",
                     "kind": "deposits", "is_system": True, "balance_minor": 0})  # fmt: skip
    await _bulk(core, account_t, accounts)
    ids = {code: aid for aid, code in await _ids(core, select(account_t.c.id, account_t.c.code))}
    await _day(core, ids, dist, shops, topups)
    return int(dist)


async def _day(core: Core, ids: dict[str, int], dist: int, shops: list[int], n: int) -> None:
    rng = random.Random(7)
    local = ZoneInfo(ZONE)
    start = datetime.combine(DAY, dtime(6), local).astimezone(UTC)
    transfers: list[dict[str, Any]] = []
    key = iter(range(10**9))

    def move(kind: str, asset: str, debit: str, credit: str, amount: int, at: datetime,
             ref: str) -> None:  # fmt: skip
        transfers.append({"idempotency_key": f"b{next(key)}", "kind": kind, "asset": asset,
                          "debit_account_id": ids[debit], "credit_account_id": ids[credit],
                          "amount_minor": amount, "reference": ref, "created_at": at})  # fmt: skip

    for shop in shops:
        at = start + timedelta(minutes=rng.randrange(60))
        move("deposit", "CASH:KES", "sys:deposits:CASH:KES", f"p{shop}:main:CASH:KES", 50_000,
             at, f"d{shop}")  # fmt: skip
        for op in OPERATORS[:2]:
            move("sale", f"AIRTIME:{op}", f"p{dist}:main:AIRTIME:{op}",
                 f"p{shop}:main:AIRTIME:{op}", 100_000, at, f"s{shop}{op}")  # fmt: skip
            move("payment", "CASH:KES", f"p{shop}:main:CASH:KES", f"p{dist}:main:CASH:KES",
                 25_000, at, f"s{shop}{op}")  # fmt: skip
            move("credit_payment", "CASH:KES", f"p{shop}:credit:CASH:KES",
                 f"p{dist}:main:CASH:KES", 73_000, at, f"s{shop}{op}")  # fmt: skip
    rows = []
    for i in range(n):
        shop, op = rng.choice(shops), rng.choice(OPERATORS)
        at = start + timedelta(seconds=rng.randrange(16 * 3600))
        amount = rng.randrange(10, 500) * 100
        fate = rng.random()
        state = "delivered" if fate < 0.8 else ("failed" if fate < 0.9 else "unknown")
        tid = f"B{i:015d}"
        rows.append({"id": tid, "party_id": shop, "msisdn": "+254712345670", "operator_code": op,
                     "product_code": f"{op}:airtime", "kind": "airtime", "amount_minor": amount,
                     "currency": "KES", "channel": "bench", "state": state, "due_at": at,
                     "sends": 1, "checks": 0, "created_at": at})  # fmt: skip
        asset = f"AIRTIME:{op}"
        move("reserve", asset, f"p{shop}:main:{asset}", f"p{shop}:inflight:{asset}", amount, at,
             tid)  # fmt: skip
        if state != "unknown":
            target = "sold" if state == "delivered" else "main"
            move("capture" if state == "delivered" else "release", asset,
                 f"p{shop}:inflight:{asset}", f"p{shop}:{target}:{asset}", amount,
                 at + timedelta(seconds=2), tid)  # fmt: skip
    await _bulk(core, Topup.__table__, rows)  # type: ignore[attr-defined]
    await _bulk(core, Transfer.__table__, transfers)  # type: ignore[attr-defined]


async def best(repeat: int, work: Callable[[], Awaitable[Any]]) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        await work()
        times.append(time.perf_counter() - began)
    return min(times)


async def bench(url: str, name: str, args: argparse.Namespace) -> list[tuple[str, str, float]]:
    settings = load_settings(database_url=url, pin_pepper=PEPPER, timezone=ZONE,
                             var_dir=Path(tempfile.mkdtemp()))  # fmt: skip
    async with open_core(settings) as core:
        await upgrade(core.engine)
        began = time.perf_counter()
        dist = await build(core, retailers=args.retailers, topups=args.topups)
        built = time.perf_counter() - began
        if core.engine.dialect.name == "postgresql":
            async with core.engine.connect() as conn:
                await conn.exec_driver_sql("COMMIT")
                await conn.exec_driver_sql("ANALYZE")
        rows = [(name, "build (bulk insert, not timed below)", built)]
        days = await everyone(core, day=DAY)
        assert len(days) == args.retailers + 1
        rows.append((name, f"everyone: {len(days)} parties' day",
                     await best(args.repeat, lambda: everyone(core, day=DAY))))  # fmt: skip
        report = await detail(core, day=DAY, party_id=dist)
        assert len(report.retailers) == args.retailers
        assert sum(p.delivered + p.failed + p.open for p in report.products) == args.topups
        took = await best(args.repeat, lambda: detail(core, day=DAY, party_id=dist))
        rows.append((name, f"detail: distributor, {args.retailers} retailers ranked", took))
        took = await best(
            args.repeat, lambda: asyncio.to_thread(charts.draw, report, language="en")
        )
        rows.append((name, "chart: draw the PNG", took))
        began = time.perf_counter()
        settled = await runs.settle(core, period="2026-11", actor=Actor.cli())
        rows.append((name, f"settle 2026-11: {len(settled)} pairs (runs, CSV+PDF each)",
                     time.perf_counter() - began))  # fmt: skip
        run_id = next(o.run.id for o in settled if o.run is not None)
        shown = await runs.show(core, run_id=run_id or 0)
        assert shown.verified
        rows.append((name, "settle show: regenerate one run", await best(
            args.repeat, lambda: runs.show(core, run_id=run_id or 0))))  # fmt: skip
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retailers", type=int, default=2_000)
    parser.add_argument("--topups", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["postgres", "sqlite"])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    note_load()
    rows = []
    if args.only != "sqlite":
        await recreate_database(args.pg, BENCH_DB)
        rows += await bench(pg_url(args.pg, BENCH_DB), "PostgreSQL", args)
    if args.only != "postgres":
        with tempfile.TemporaryDirectory() as folder:
            rows += await bench(f"sqlite:///{folder}/bench.db", "SQLite", args)
    table = Table("database", "what", "seconds (best)")
    for name, what, seconds in rows:
        table.add_row(name, what, f"{seconds:.3f}")
    Console().print(table)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Console().print(f"peak RSS {peak_mb:.0f} MB; {args.retailers} retailers, {args.topups} top-ups")


if __name__ == "__main__":
    asyncio.run(main())
