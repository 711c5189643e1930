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
from airgate.cli.topup import local, zone_name
from core.errors import AirGateError
from core.money import format_minor
from core.redis import connected as redis_connected
from core.routing import status as routing_status

app = typer.Typer(no_args_is_help=True, help="Aggregator accounts: routing health and float.")


@app.command("status")
def status(as_json: JsonOpt = False) -> None:
    """Per account: health, its breaker per operator, float, the last errors."""
    s = settings()
    zone = s.timezone

    async def work() -> list[routing_status.AccountStatus]:
        async with redis_connected(s) as redis:
            return await routing_status.read(s, redis)

    try:
        accounts = asyncio.run(work())
    except (AirGateError, OSError, aioredis.RedisError) as exc:
        fail(f"cannot read the routing state: {type(exc).__name__}: {exc}")
    emit(
        {"accounts": [a.as_dict() for a in accounts]},
        as_json=as_json,
        human=lambda: _print(accounts, zone),
    )


def _when(ms: int | None, zone: str) -> str:
    """The time of day, with its date when not today (AIRGATE_TIMEZONE)."""
    if ms is None:
        return "-"
    shown = local(datetime.fromtimestamp(ms / 1000, UTC), zone, seconds=True)
    today = local(datetime.now(UTC), zone)[:10]
    return shown.removeprefix(today + " ")


def _print(accounts: list[routing_status.AccountStatus], zone: str) -> None:
    """Times in AIRGATE_TIMEZONE; the last errors under the tables, one line each."""
    table = Table(box=box.SIMPLE, title="aggregator accounts")
    for column in ("account", "adapter", "price", "health", "float", "alert under",
                   f"read ({zone_name(zone)})"):  # fmt: skip
        table.add_column(column)
    for a in accounts:
        f = a.float
        balance = "-" if f.balance_minor is None else format_minor(f.balance_minor, f.currency)
        balance += " LOW" if f.low else ""
        under = format_minor(a.low_float_minor, f.currency) if a.low_float_minor else "-"
        price = f"{a.price_bps / 100:.2f}%"
        table.add_row(a.name, a.adapter, price, a.health, balance, under, _when(f.at_ms, zone))
    out.print(table)
    ops = Table(box=box.SIMPLE, title="per operator")
    for column in ("account", "operator", "breaker", "/".join(routing_status.RESULTS), "latency"):
        ops.add_column(column)
    errors = []
    for a in accounts:
        if a.float.error:
            errors.append(f"{a.name} float, {_when(a.float.at_ms, zone)}: {a.float.error}")
        for op in a.operators:
            latency = "-" if op.latency_ms is None else f"{op.latency_ms:.0f} ms"
            counts = "/".join(str(op.counts[r]) for r in routing_status.RESULTS)
            ops.add_row(a.name, op.operator, op.breaker, counts, latency)
            if op.last_error:
                when = _when(op.last_error_ms, zone)
                errors.append(f"{a.name} {op.operator}, {when}: {op.last_error}")
    out.print(ops if ops.row_count else "no sends recorded yet")
    if errors:
        out.print("last errors:")
        for line in errors:
            out.print(f"  {line}", markup=False, highlight=False)
