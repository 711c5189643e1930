"""``airgate sandbox``: the stand-in aggregator and SMS sink (package ``sandbox/``) on one port."""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING, Annotated

import typer

from airgate.cli._run import amount, fail, out, settings
from sandbox.rules import RULES_TEXT

if TYPE_CHECKING:
    from sandbox.config import SandboxConfig

# Hanging answers (…2, …3) would hold a graceful stop for hang_s; a sandbox need not wait for them.
SHUTDOWN_GRACE_S = 1.0


def _env(name: str) -> str:
    return f"AIRGATE_SANDBOX_{name}"


def sandbox(
    host: Annotated[
        str | None, typer.Option(help="Default: AIRGATE_SANDBOX_HOST or 127.0.0.1.")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Default: AIRGATE_SANDBOX_PORT or 8090.")
    ] = None,
    latency_ms: Annotated[
        int, typer.Option(min=0, envvar=_env("LATENCY_MS"), help="Added to every /topups answer.")
    ] = 0,
    decline_rate: Annotated[
        float, typer.Option(min=0, max=1, envvar=_env("DECLINE_RATE"), help="Random declines.")
    ] = 0.0,
    error_rate: Annotated[
        float,
        typer.Option(min=0, max=1, envvar=_env("ERROR_RATE"), help="Random 503s, not recorded."),
    ] = 0.0,
    seed: Annotated[
        int | None, typer.Option(envvar=_env("SEED"), help="Seed of the random knobs.")
    ] = None,
    token_ttl_s: Annotated[
        float, typer.Option(min=1, envvar=_env("TOKEN_TTL_S"), help="Access token lifetime.")
    ] = 3600.0,
    hang_s: Annotated[
        float, typer.Option(min=0, envvar=_env("HANG_S"), help="How long …2/…3 hold the answer.")
    ] = 15.0,
    settle_s: Annotated[
        float, typer.Option(min=0, envvar=_env("SETTLE_S"), help="When …2/…3 leave PROCESSING.")
    ] = 2.0,
    slow_ms: Annotated[
        int, typer.Option(min=0, envvar=_env("SLOW_MS"), help="How late …5 answers.")
    ] = 3000,
    balance: Annotated[
        str, typer.Option(envvar=_env("BALANCE"), help="Initial account balance, KES.")
    ] = "100,000,000",
    digit_rules: Annotated[
        bool,
        typer.Option(
            "--digit-rules/--no-digit-rules",
            envvar=_env("DIGIT_RULES"),
            help="Apply the last-digit rules (off: every number succeeds, bar the random knobs).",
        ),
    ] = True,
) -> None:
    """Serve the sandbox aggregator (Reloadly Airtime API shape) and SMS sink (Africa's Talking
    shape) in memory, with /sandbox/stats, /sandbox/sms and POST /sandbox/reset for tests.

    \b
    """
    from sandbox.config import SandboxConfig

    s = settings()
    try:
        config = SandboxConfig(
            host=host or s.sandbox_host,
            port=port or s.sandbox_port,
            client_id=s.provider_client_id,
            client_secret=s.provider_client_secret.get_secret_value(),
            dtone_api_key=s.dtone_api_key.get_secret_value(),
            dtone_api_secret=s.dtone_api_secret.get_secret_value(),
            sms_username=s.sms_username,
            sms_api_key=s.sms_api_key.get_secret_value(),
            token_ttl_s=token_ttl_s,
            latency_ms=latency_ms,
            decline_rate=decline_rate,
            error_rate=error_rate,
            seed=seed,
            digit_rules=digit_rules,
            hang_s=hang_s,
            settle_s=settle_s,
            slow_ms=slow_ms,
            initial_balance_minor=amount(balance),
        )
    except ValueError as exc:
        fail(str(exc))
    try:
        asyncio.run(_serve_until_signal(config))
    except OSError as exc:
        fail(f"cannot listen on {config.host}:{config.port}: {exc.strerror}")


sandbox.__doc__ = (sandbox.__doc__ or "") + RULES_TEXT.replace("\n", "\n    ")


async def _serve_until_signal(config: SandboxConfig) -> None:
    from aiohttp import web  # imported here: only the serving commands pay for it

    from sandbox.app import build_app

    runner = web.AppRunner(build_app(config), access_log=None, shutdown_timeout=SHUTDOWN_GRACE_S)
    await runner.setup()
    try:
        await web.TCPSite(runner, config.host, config.port).start()
        out.print(f"Sandbox   http://{config.host}:{config.port}  (Ctrl-C stops it)")
        out.print("Inspect   /sandbox/stats  /sandbox/sms?to=+2547…  POST /sandbox/reset")
        rules = "on" if config.digit_rules else "off"
        out.print(
            f"Knobs     latency {config.latency_ms} ms, decline {config.decline_rate}, "
            f"error {config.error_rate}, last-digit rules {rules}"
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        out.print("stopping")
    finally:
        await runner.cleanup()
