"""``airgate provider status``: the aggregator accounts as the workers see them (health, each
operator's breaker, float, last errors), read from Redis; nothing is sent to an aggregator."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import redis.asyncio as aioredis
import typer
from rich import box
from rich.table import Table

from airgate.cli._run import JsonOpt, emit, fail, out, settings
from core.errors import AirGateError
from core.money import format_minor
from core.redis import redis_for
from core.routing import status as routing_status

app = typer.Typer(no_args_is_help=True, help="Aggregator accounts: routing health and float.")


@app.command("status")
def status(as_json: JsonOpt = False) -> None:
    """Per account: health, its breaker per operator, float, the last errors."""
    s = settings()

    async def work() -> list[routing_status.AccountStatus]:
        async with redis_for(configured=s.redis_url, var_dir=s.var_dir) as url:
            redis = aioredis.Redis.from_url(url)
            try:
                return await routing_status.read(s, redis)
            finally:
                await redis.aclose()

    try:
        accounts = asyncio.run(work())
    except (AirGateError, OSError, aioredis.RedisError) as exc:
        fail(f"cannot read the routing state: {type(exc).__name__}: {exc}")
    emit(
        {"accounts": [a.as_dict() for a in accounts]},
        as_json=as_json,
        human=lambda: _print(accounts),
    )


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _print(accounts: list[routing_status.AccountStatus]) -> None:
    table = Table(box=box.SIMPLE, title="aggregator accounts")
    for column in ("account", "adapter", "price", "health", "float", "read at", "float error"):
        table.add_column(column)
    for a in accounts:
        f = a.float
        balance = "-" if f.balance_minor is None else format_minor(f.balance_minor, f.currency)
        if f.low:
            balance += f" LOW (< {format_minor(a.low_float_minor, f.currency)})"
        price = f"{a.price_bps / 100:.2f}%"
        table.add_row(a.name, a.adapter, price, a.health, balance, _when(f.at_ms), f.error or "-")
    out.print(table)
    ops = Table(box=box.SIMPLE, title="per operator")
    for column in ("account", "operator", "breaker", "ok", "slow", "refused", "error", "unknown",
                   "latency", "last error"):  # fmt: skip
        ops.add_column(column)
    for a in accounts:
        for op in a.operators:
            latency = "-" if op.latency_ms is None else f"{op.latency_ms:.0f} ms"
            last = f"{_when(op.last_error_ms)}: {op.last_error}" if op.last_error else "-"
            counts = [str(op.counts[r]) for r in routing_status.RESULTS]
            ops.add_row(a.name, op.operator, op.breaker, *counts, latency, last)
    if ops.row_count:
        out.print(ops)
    else:
        out.print("no sends recorded yet")
