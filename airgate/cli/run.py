"""``airgate serve``, ``airgate demo``, ``airgate seed``, ``airgate catalog``: running AirGate."""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import socket
import sys
from collections.abc import Coroutine
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from sqlalchemy import select
from sqlmodel import col

from airgate.cli._run import (
    JsonOpt,
    aggregator_url,
    database_problem,
    emit,
    exit_code,
    fail,
    out,
    run,
    settings,
)
from airgate.cli.phone import Line, LineDown, line_for, logs_to, ring
from core.context import Core, open_core
from core.db import upgrade
from core.errors import AirGateError
from core.logging import configure, secrets_of
from core.models import Party, Role
from core.redis import redis_for
from core.services.audit import Actor
from core.services.catalog import CatalogCounts, demo_catalog_text, load_catalog
from core.services.seed import SeedSummary, seed_demo
from core.settings import Settings

if TYPE_CHECKING:
    from aiohttp import web

catalog_app = typer.Typer(no_args_is_help=True, help="Operators and products.")


class CannotRun(Exception):
    """A part of ``serve``/``demo`` could not start or stopped by itself: one line says which."""


def _stop_on_signal() -> None:
    """SIGINT/SIGTERM cancel the running main task once, so every resource it opened is released
    on the way out (in reverse order) and the command exits 0 without a traceback."""
    task = asyncio.current_task()
    assert task is not None
    stopping = False

    def stop() -> None:
        nonlocal stopping
        if not stopping:  # a second Ctrl-C must not cut the clean-up short
            stopping = True
            out.print("stopping")
            task.cancel()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)


async def _listen(
    stack: AsyncExitStack,
    app: web.Application,
    *,
    host: str,
    port: int,
    what: str,
    setting: str,
    shutdown_timeout_s: float = 60.0,
    fd: int | None = None,
) -> None:
    """Serve ``app`` on ``host:port`` until ``stack`` closes; a taken port is one line naming the
    setting that moves it. With ``fd``, on that listening socket instead, bound by the parent
    (``serve --processes``, airgate/supervisor.py)."""
    from aiohttp import web  # imported here: only the serving commands pay for it

    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout_s)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    if fd is not None:
        await web.SockSite(runner, socket.socket(fileno=fd)).start()
        return
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        # asyncio's strerror repeats the address; the errno's own words are enough.
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        raise CannotRun(
            f"cannot listen on {host}:{port} for {what}: {reason} (set {setting})"
        ) from None


def _say(label: str, text: str) -> None:
    out.print(f"{label:<9} {text}", soft_wrap=True)  # never wrapped: the commands are copied


@dataclass(frozen=True)
class Inherited:
    """What a child of ``serve --processes`` gets from its parent: the listening sockets' fds and
    the pipe it writes one byte to once it listens."""

    http_fd: int
    ops_fd: int | None
    ready_fd: int

    def ready(self) -> None:
        os.write(self.ready_fd, b"1")
        os.close(self.ready_fd)


async def _listen_http(stack: AsyncExitStack, s: Settings, fds: Inherited | None = None) -> None:
    """The gateways' listener, and the operators' one when AIRGATE_OPS_PORT gives it its own."""
    from airgate.server import build_app, build_ops_app

    app = build_app(s)
    await _listen(
        stack,
        app,
        host=s.http_host,
        port=s.http_port,
        what="HTTP",
        setting="AIRGATE_HTTP_PORT",
        shutdown_timeout_s=SHUTDOWN_GRACE_S,
        fd=None if fds is None else fds.http_fd,
    )
    if s.ops_port is not None:
        ops = build_ops_app(s, app)
        await _listen(
            stack,
            ops,
            host=s.ops_host,
            port=s.ops_port,
            what="ops",
            setting="AIRGATE_OPS_PORT",
            shutdown_timeout_s=SHUTDOWN_GRACE_S,
            fd=None if fds is None else fds.ops_fd,
        )


def _http_line(s: Settings) -> str:
    probes = "/healthz, /readyz, /metrics"
    if s.ops_port is None:
        return f"http://{s.http_host}:{s.http_port}  ({probes})"
    return f"http://{s.http_host}:{s.http_port}  ({probes} on http://{s.ops_host}:{s.ops_port})"


def _api_line(s: Settings) -> str:
    docs = f"http://{s.http_host}:{s.http_port}/api/v1/docs"
    return f"{docs}  (REST API; keys: airgate apikey create)"


async def _serve(s: Settings, fds: Inherited | None) -> None:
    _stop_on_signal()
    async with AsyncExitStack() as stack:
        await _listen_http(stack, s, fds)
        if fds is None:
            _say_listening(s, processes=1)
        else:
            fds.ready()  # the parent has said where once for all its children
        _settle_garbage_collector()
        await asyncio.Event().wait()  # until a signal cancels this task


def _say_listening(s: Settings, *, processes: int) -> None:
    _say("HTTP", _http_line(s))
    _say("API", _api_line(s))
    if processes > 1:
        _say("Processes", f"{processes}, each with its own connection pools (docs/OPERATIONS.md)")


def _settle_garbage_collector() -> None:
    """What start-up made (modules, the app, the catalogue) lives as long as the process: frozen,
    the collector's full passes stop walking it, and those passes stall every request in flight
    (docs/BENCHMARKS.md, "USSD journey")."""
    import gc

    gc.collect()
    gc.freeze()


def _until_stopped(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` until a signal stops it; what could not start is one line, exit 1."""
    from telegram.error import TelegramError  # the serving commands import it anyway

    try:
        asyncio.run(_cancelled_is_done(main))
    except (CannotRun, AirGateError, LineDown) as exc:
        fail(str(exc), code=exit_code(exc))
    except TelegramError as exc:  # its text may hold the API URL, so only its kind
        fail(
            f"cannot start the Telegram bot: {type(exc).__name__} (check "
            "AIRGATE_TELEGRAM_TOKEN and AIRGATE_TELEGRAM_API_URL)"
        )
    except OSError as exc:
        fail(f"cannot start: {exc}")
    except Exception as exc:  # the database: too many clients, a login refused
        if (problem := database_problem(exc)) is None:
            raise
        fail(str(problem), code=exit_code(problem))


async def _cancelled_is_done(main: Coroutine[Any, Any, None]) -> None:
    # Only our own signal handler cancels this task: being cancelled is how it is asked to stop.
    with suppress(asyncio.CancelledError):
        await main


# How long a stopping `serve` lets requests in flight finish (a gateway has long given up by
# then); its parent under --processes kills a child still running SUPERVISE_GRACE_S later.
SHUTDOWN_GRACE_S = 30.0
SUPERVISE_GRACE_S = SHUTDOWN_GRACE_S + 10.0


def serve(
    processes: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Worker processes sharing the port (about one per core). Each has its own "
            "database and Redis pools: the connection budget is multiplied by N "
            "(docs/OPERATIONS.md, 'Connection budget').",
        ),
    ] = 1,
    ready_fd: Annotated[int | None, typer.Option(hidden=True)] = None,
    http_fd: Annotated[int | None, typer.Option(hidden=True)] = None,
    ops_fd: Annotated[int | None, typer.Option(hidden=True)] = None,
) -> None:
    """Serve HTTP: the USSD gateways, the Telegram webhook, the REST API, health and metrics."""
    s = settings()
    configure(level=s.log_level, json=s.log_json, secrets=secrets_of(s))
    if ready_fd is not None and http_fd is not None:  # a child of `serve --processes N`
        _until_stopped(_serve(s, Inherited(http_fd=http_fd, ops_fd=ops_fd, ready_fd=ready_fd)))
    elif processes == 1:
        _until_stopped(_serve(s, None))
    else:
        _supervise(s, processes)


def _supervise(s: Settings, processes: int) -> None:
    """N children on sockets bound here, kept running until a signal (airgate/supervisor.py)."""
    from airgate.supervisor import GaveUp, Listener, Supervisor

    listeners = [Listener(s.http_host, s.http_port, "--http-fd", "HTTP", "AIRGATE_HTTP_PORT")]
    if s.ops_port is not None:
        listeners.append(Listener(s.ops_host, s.ops_port, "--ops-fd", "ops", "AIRGATE_OPS_PORT"))
    supervisor = Supervisor(processes, listeners, stop_grace_s=SUPERVISE_GRACE_S)
    try:
        supervisor.bind()
        _say_listening(s, processes=processes)
        _settle_garbage_collector()  # and its exit is not seconds of collecting the imports
        code = asyncio.run(supervisor.run())
    except GaveUp as exc:
        if str(exc):
            fail(str(exc), code=exc.code)
        raise typer.Exit(exc.code) from None
    if code:
        fail(
            f"a serve process did not stop within {SUPERVISE_GRACE_S:.0f} s and was killed",
            code=code,
        )


def local_sandbox(s: Settings) -> bool:
    """The aggregator URL is the sandbox's own address (the default): the demo serves it."""
    sandbox = f"http://{s.sandbox_host}:{s.sandbox_port}"
    return aggregator_url(s)[0].rstrip("/") in (sandbox, f"{sandbox}/v1")


async def _migrate_and_seed(s: Settings, *, retailers: int) -> None:
    async with open_core(s) as core:
        await upgrade(core.engine)
        async with core.sessions() as session:
            seeded = (
                await session.execute(select(col(Party.id)).where(col(Party.role) == Role.PLATFORM))
            ).first()
        if not seeded:
            out.print(f"seeding demo data ({retailers} retailers)…")
            await seed_demo(core, retailers=retailers)


async def _serve_sandbox(stack: AsyncExitStack, s: Settings) -> None:
    from airgate.cli.sandbox import SHUTDOWN_GRACE_S
    from sandbox.app import build_app
    from sandbox.config import SandboxConfig

    config = SandboxConfig(
        host=s.sandbox_host,
        port=s.sandbox_port,
        client_id=s.provider_client_id,
        client_secret=s.provider_client_secret.get_secret_value(),
        dtone_api_key=s.dtone_api_key.get_secret_value(),
        dtone_api_secret=s.dtone_api_secret.get_secret_value(),
        sms_username=s.sms_username,
        sms_api_key=s.sms_api_key.get_secret_value(),
    )
    await _listen(
        stack,
        build_app(config),
        host=config.host,
        port=config.port,
        what="the sandbox",
        setting="AIRGATE_SANDBOX_PORT",
        shutdown_timeout_s=SHUTDOWN_GRACE_S,
    )


async def _start_worker(stack: AsyncExitStack, s: Settings, *, url: str) -> asyncio.Task[None]:
    """The arq worker ``airgate worker`` runs, as a task of this process; stopped as arq stops on
    a signal (running jobs are cancelled and re-run later: every step is safe to run twice)."""
    from core.worker import build_worker, run_worker  # only the worker pays for arq

    worker = build_worker(s, redis_url=url, handle_signals=False)
    task = asyncio.create_task(run_worker(worker))
    await asyncio.sleep(0)  # run_worker has begun, so handle_sig has a main task to cancel

    async def stop() -> None:
        if not task.done():
            worker.handle_sig(signal.SIGUSR1)
            await task

    stack.push_async_callback(stop)
    return task


def _print_demo(s: Settings, *, url: str, sandbox: bool) -> None:
    _say("Database", s.effective_database_url)
    embedded = "" if s.redis_url else "  (embedded: stops with the last AirGate process using it)"
    _say("Redis", f"{url}{embedded}")
    _say("HTTP", _http_line(s))
    _say("API", _api_line(s))
    sandbox_url = f"http://{s.sandbox_host}:{s.sandbox_port}"
    if sandbox:
        _say("Sandbox", f"{sandbox_url}  (stand-in aggregator and SMS gateway, docs/PROVIDERS.md)")
    else:
        where, setting = aggregator_url(s)
        _say("Provider", f"{where}  ({setting}: no sandbox started)")
    _say("Worker", f"in this process, up to {s.worker_max_jobs} jobs at once")
    _say("Demo", "distributor +254700000100, retailers +254700000001…, PIN 1234")
    me = airgate_as_typed()
    _say("Try", f"{me} topup send +254700000001 0712345670 50   # PIN 1234")
    _say("", f"{me} topup list")
    _say("", f"{me} phone +254700000001   # the USSD menu, PIN 1234")
    _say("", "(in another terminal, from this folder)")
    if sandbox and s.sms_url.rstrip("/") == sandbox_url:
        _say("SMS", f"curl {sandbox_url}/sandbox/sms   # what the retailer and customer got")
    elif s.sms_url.rstrip("/") == sandbox_url:
        _say("SMS", f"{s.sms_url}: nothing listens there; set AIRGATE_SMS_URL")
    else:
        _say("SMS", f"through {s.sms_url}  (AIRGATE_SMS_URL)")
    _say("", "Ctrl-C stops the demo")


def airgate_as_typed() -> str:
    """This very ``airgate`` as a person types it in another terminal in the same folder, where
    the virtualenv may not be active: its path, relative when under the folder
    (``.venv/bin/airgate``), never a bare ``airgate`` the shell might not find."""
    me = Path(sys.argv[0]).absolute()
    try:
        relative = me.relative_to(Path.cwd())
    except ValueError:
        return str(me)
    return str(relative) if len(relative.parts) > 1 else f"./{relative}"  # a path, not a name


async def _demo(s: Settings, *, retailers: int, phone: Line | None) -> None:
    _stop_on_signal()
    # Closed in reverse: the worker first (it needs the sandbox and Redis), then the servers.
    async with AsyncExitStack() as stack:
        _claim_demo(stack, s.var_dir)  # first: a second demo on the same data stops here
        url = await stack.enter_async_context(redis_for(configured=s.redis_url, var_dir=s.var_dir))
        sandbox = local_sandbox(s)
        if sandbox:
            await _serve_sandbox(stack, s)
        await _migrate_and_seed(s, retailers=retailers)
        # After the seed: once /health answers, the demo data is there.
        await _listen_http(stack, s)
        worker = await _start_worker(stack, s, url=url)
        _print_demo(s, url=url, sandbox=sandbox)
        # asyncio.wait, not `await worker`: a signal must not cancel it.
        ends = [worker] if phone is None else [worker, ring(phone)]
        done, _ = await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
        if worker not in done:
            return ends[1].result()  # the phone quit (or says why it could not go on)
        raise CannotRun(f"the worker stopped: {worker.exception()!r}")


def _claim_demo(stack: AsyncExitStack, var_dir: Path) -> None:
    """One demo per var dir: ``demo.pid`` holds the running demo's pid under an exclusive
    ``flock``, which the kernel drops when that process ends however it ends, so a pid file left
    by a demo that died is simply taken over."""
    var_dir.mkdir(parents=True, exist_ok=True)
    path = var_dir / "demo.pid"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise CannotRun(
            f"a demo is already running on {var_dir} (pid {pid}): stop it (Ctrl-C in its "
            f"terminal, or kill {pid}), or set AIRGATE_VAR_DIR for a demo of its own"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())

    def release() -> None:
        os.ftruncate(fd, 0)  # kept, empty: unlinking it could let two demos lock two files
        os.close(fd)

    stack.callback(release)


def demo(
    retailers: Annotated[int, typer.Option(min=1, max=999_999, help="Retailers to seed.")] = 10,
    phone: Annotated[
        str | None,
        typer.Option(metavar="NUMBER", help="Then dial in from NUMBER; quitting stops the demo."),
    ] = None,
) -> None:
    """Everything in one process on embedded defaults: migrate, seed if empty, start Redis, the
    sandbox (aggregator and SMS stand-in), the worker and HTTP."""
    s = settings()
    configure(level=s.log_level, json=s.log_json, secrets=secrets_of(s))
    line = None if phone is None else line_for(s, phone)
    if line is not None:  # the phone has the terminal: the logs go to a file
        logs_to(s.var_dir / "demo.log")
        _say("Logs", str(s.var_dir / "demo.log"))
    _until_stopped(_demo(s, retailers=retailers, phone=line))


def seed(
    demo_data: Annotated[bool, typer.Option("--demo", help="The documented demo data.")] = False,
    retailers: Annotated[int, typer.Option(min=1, max=999_999)] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Create the deterministic demo data (docs/DEMO.md), migrating the database first as
    `airgate demo` does; running it again changes nothing."""
    if not demo_data:
        fail("only --demo is available: say `airgate seed --demo`")

    async def work(core: Core) -> SeedSummary:
        await upgrade(core.engine)  # a fresh database gets its tables, not a traceback
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
