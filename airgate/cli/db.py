"""``airgate db``: migrations."""

from __future__ import annotations

import typer

from airgate.cli._run import out, run
from core.context import Core
from core.db import current_revision, upgrade

app = typer.Typer(no_args_is_help=True, help="Database migrations.")


@app.command("upgrade")
def upgrade_cmd(revision: str = typer.Argument("head")) -> None:
    """Migrate the database to REVISION (default: the newest)."""

    async def work(core: Core) -> str | None:
        await upgrade(core.engine, revision)
        return await current_revision(core.engine)

    out.print(f"database at revision {run(work)}")


@app.command("current")
def current_cmd() -> None:
    """Print the database's migration revision."""

    async def work(core: Core) -> str | None:
        return await current_revision(core.engine)

    out.print(run(work) or "empty (run `airgate db upgrade`)")
