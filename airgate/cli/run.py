"""``airgate serve``, ``airgate demo``, ``airgate seed``, ``airgate catalog``: running AirGate."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import select
from sqlmodel import col

from airgate.cli._run import JsonOpt, emit, fail, out, run, settings
from core.context import Core, open_core
from core.db import upgrade
from core.errors import AirGateError
from core.logging import configure
from core.models import Party, Role
from core.redis import redis_url, stop_embedded
from core.services.audit import Actor
from core.services.catalog import CatalogCounts, demo_catalog_text, load_catalog
from core.services.seed import SeedSummary, seed_demo
from core.settings import Settings

catalog_app = typer.Typer(no_args_is_help=True, help="Operators and products.")


async def _serve_until_signal(s: Settings) -> None:
    from aiohttp import web  # imported here: only the serving commands pay for it

    from airgate.server import build_app

    runner = web.AppRunner(build_app(s), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, s.http_host, s.http_port).start()
        out.print(f"HTTP      http://{s.http_host}:{s.http_port}  (/health, /metrics)")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        out.print("stopping")
    finally:
        await runner.cleanup()


def serve() -> None:
    """Serve HTTP: health and metrics now; USSD, Telegram webhook and the REST API as they land."""
    s = settings()
    configure(level=s.log_level, json=s.log_json)
    try:
        asyncio.run(_serve_until_signal(s))
    except OSError as exc:
        fail(f"cannot listen on {s.http_host}:{s.http_port}: {exc.strerror}")


def demo(
    retailers: Annotated[int, typer.Option(min=1, max=999_999, help="Retailers to seed.")] = 10,
) -> None:
    """Everything on embedded defaults: migrate, seed if empty, start Redis and HTTP."""
    s = settings()
    configure(level=s.log_level, json=s.log_json)

    async def main() -> None:
        url, started = await redis_url(configured=s.redis_url, var_dir=s.var_dir)
        try:
            async with open_core(s) as core:
                await upgrade(core.engine)
                async with core.sessions() as session:
                    seeded = (
                        await session.execute(
                            select(col(Party.id)).where(col(Party.role) == Role.PLATFORM)
                        )
                    ).first()
                if not seeded:
                    out.print(f"seeding demo data ({retailers} retailers)…")
                    await seed_demo(core, retailers=retailers)
            out.print(f"Database  {s.effective_database_url}")
            out.print(f"Redis     {url}{' (embedded, started now)' if started else ''}")
            out.print("Demo      distributor +254700000100, retailers +254700000001…, PIN 1234")
            out.print("Try       airgate balance +254700000001   (Ctrl-C stops the demo)")
            await _serve_until_signal(s)
        finally:
            if started:
                await stop_embedded(s.var_dir)

    try:
        asyncio.run(main())
    except AirGateError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot start: {exc}")


def seed(
    demo_data: Annotated[bool, typer.Option("--demo", help="The documented demo data.")] = False,
    retailers: Annotated[int, typer.Option(min=1, max=999_999)] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Create the deterministic demo data (docs/DEMO.md); running it again changes nothing."""
    if not demo_data:
        fail("only --demo is available: say `airgate seed --demo`")

    async def work(core: Core) -> SeedSummary:
        return await seed_demo(core, retailers=retailers)

    summary = run(work)
    emit(
        {"platform": summary.platform, "distributor": summary.distributor, "retailers": retailers},
        as_json=as_json,
        human=lambda: out.print(
            f"demo data: distributor {summary.distributor}, {summary.retailers} retailers "
            f"from +254700000001, PIN {summary.pin}"
        ),
    )


@catalog_app.command("load")
def catalog_load(
    path: Annotated[Path | None, typer.Argument(help="A catalog TOML file.")] = None,
    demo_catalog: Annotated[bool, typer.Option("--demo", help="The Kenyan demo catalog.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Load operators, products and number prefixes from a catalog file."""
    if (path is None) == (not demo_catalog):
        fail("give either a catalog FILE or --demo")
    try:
        text = demo_catalog_text() if path is None else path.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")

    async def work(core: Core) -> CatalogCounts:
        return await load_catalog(core, text=text, actor=Actor.cli())

    counts = run(work)
    emit(
        {"operators": counts.operators, "products": counts.products, "prefixes": counts.prefixes},
        as_json=as_json,
        human=lambda: out.print(
            f"{counts.operators} operators, {counts.products} products, {counts.prefixes} prefixes"
        ),
    )
