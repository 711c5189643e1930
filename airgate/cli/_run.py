"""What every command shares: settings, the core, output, and the one place errors become text."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from core.context import Core, open_core
from core.errors import AirGateError, SettingsError
from core.money import parse_major
from core.security import Pin
from core.settings import Settings, load_settings

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


def run(work: Callable[[Core], Awaitable[T]]) -> T:
    """Run ``work`` with a core built from the environment; an AirGateError becomes one line."""

    async def main() -> T:
        async with open_core(settings()) as core:
            return await work(core)

    try:
        return asyncio.run(main())
    except AirGateError as exc:
        fail(str(exc), code=exit_code(exc))


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
