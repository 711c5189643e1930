"""What every command shares: settings, the core, output, and the one place errors become text."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from core.context import Core, open_core
from core.errors import AirGateError, SettingsError
from core.money import parse_major
from core.security import Pin
from core.settings import Settings, load_settings
from core.stores import database_down, login_refused

T = TypeVar("T")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
out = Console(highlight=False)


def aggregator_url(s: Settings) -> tuple[str, str]:
    """The running aggregator's base URL and the variable that sets it: DT One has its own."""
    if s.provider == "dtone":
        return s.dtone_url, "AIRGATE_DTONE_URL"
    return s.provider_url, "AIRGATE_PROVIDER_URL"


def fail(message: str, *, code: int = 1) -> NoReturn:
    sys.stderr.write(f"airgate: {message}\n")  # one plain line, never wrapped or styled
    raise typer.Exit(code)


# A bad setting exits 2 (README, "Configuration"), any other error 1.
SETTINGS_EXIT = 2


def exit_code(exc: BaseException) -> int:
    """What an error the user is told about exits with: 2 for a setting, also one found after
    start-up (a database not migrated), else 1."""
    return SETTINGS_EXIT if isinstance(exc, SettingsError) else 1


def settings() -> Settings:
    """The settings every command starts with: a bad one is one line and exit status 2."""
    try:
        return load_settings()
    except SettingsError as exc:
        fail(str(exc), code=SETTINGS_EXIT)


# What a short-lived command holds of PostgreSQL: one connection (a second only if a command
# nests a unit of work in another), none of the lookups' own. 200 commands at once then ask for
# 200, not 200 × 19 (docs/OPERATIONS.md, "Connection budget").
CLI_POOL = {"db_pool_size": 1, "db_max_overflow": 1, "db_lookup_connections": 0}


def command_settings() -> Settings:
    """The settings, with the connection budget of a short-lived command."""
    return settings().model_copy(update=CLI_POOL)


def run(work: Callable[[Core], Awaitable[T]]) -> T:
    """Run ``work`` with a core built from the environment; see :func:`run_async`."""

    async def main() -> T:
        async with open_core(command_settings()) as core:
            return await work(core)

    return run_async(main())


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``; an AirGateError, or a database that cannot be reached, will not take
    the work now or refuses the login, becomes one line and a non-zero exit, never a traceback."""
    try:
        return asyncio.run(main)
    except AirGateError as exc:
        fail(str(exc), code=exit_code(exc))
    except Exception as exc:
        if (problem := database_problem(exc)) is None:
            raise
        fail(str(problem), code=exit_code(problem))


# The OSErrors a connection to the database ends with: refused or reset, timed out, no such host.
_NETWORK_ERRORS = (ConnectionError, TimeoutError, socket.gaierror)


def database_problem(exc: BaseException) -> AirGateError | None:
    """``exc`` as what a person can act on: StoreUnavailable (down, busy, too many clients, timed
    out: try again later), or the setting to fix (a login refused, no such database)."""
    if isinstance(exc, OSError) and not isinstance(exc, _NETWORK_ERRORS):
        return None  # a file, a port to listen on: not the database's
    if (down := database_down(exc)) is not None:
        return down
    if (refused := login_refused(exc)) is not None:
        return SettingsError(setting="AIRGATE_DATABASE_URL", reason=refused, value=None)
    return None


def emit(data: Any, *, as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, default=str, indent=2) + "\n")
    else:
        human()


def amount(text: str) -> int:
    """Parse a CLI amount in major units (``1,500.50``) into minor units."""
    try:
        value = parse_major(text)
    except ValueError as exc:
        fail(str(exc))
    if value <= 0:
        fail("the amount must be more than zero")
    return value


def read_pin(*, from_stdin: bool) -> Pin:
    """A PIN from stdin (scripts) or a hidden, confirmed prompt; never from argv."""
    if from_stdin or not sys.stdin.isatty():
        digits = sys.stdin.readline()
    else:
        digits = typer.prompt("PIN", hide_input=True, confirmation_prompt=True)
    try:
        return Pin(digits)
    except AirGateError as exc:
        fail(str(exc))
