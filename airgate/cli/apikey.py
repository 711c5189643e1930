"""``airgate apikey``: a party's keys for the REST API (docs/API.md). The key is printed once, at
creation; only its prefix is shown afterwards."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from airgate.cli._run import JsonOpt, emit, fail, out, run
from airgate.cli.party import PartyArg
from core.context import Core
from core.errors import AirGateError
from core.models import ApiKey, Scope
from core.services import apikeys
from core.services.audit import Actor

app = typer.Typer(no_args_is_help=True, help="API keys for the REST API: create, list, revoke.")
SCOPES = ", ".join(s.value for s in Scope)


def key_dict(row: ApiKey) -> dict[str, Any]:
    """What may be shown of a key: never the key or its hash."""
    return {
        "id": row.id,
        "prefix": row.prefix,
        "party_id": row.party_id,
        "scopes": row.scopes.split(","),
        "label": row.label,
        "created_at": row.created_at.isoformat(),
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
    }


@app.command("create")
def create(
    party: PartyArg,
    scopes: Annotated[str, typer.Option(help=f"Comma-separated: {SCOPES}.")] = "read",
    label: Annotated[str, typer.Option(help="What the key is for (a till, a system).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Make a key for PARTY. The key is shown this once: store it now."""
    try:
        chosen = apikeys.parse_scopes(scopes)
    except AirGateError as exc:
        fail(str(exc))

    async def work(core: Core) -> apikeys.Created:
        return await apikeys.create(
            core, actor=Actor.cli(), party_ref=party, scopes=chosen, label=label
        )

    made = run(work)

    def human() -> None:
        out.print(made.key, soft_wrap=True)
        out.print(
            f"  key {made.row.prefix}… for party #{made.row.party_id}, scopes {made.row.scopes}:"
            " shown once, store it now (AirGate keeps only its hash)",
            soft_wrap=True,
        )

    emit({**key_dict(made.row), "key": made.key}, as_json=as_json, human=human)


@app.command("list")
def list_(
    party: PartyArg,
    revoked: Annotated[bool, typer.Option("--all", help="Revoked keys too.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """PARTY's keys, by prefix."""

    async def work(core: Core) -> list[ApiKey]:
        return await apikeys.list_keys(core, actor=Actor.cli(), party_ref=party, revoked=revoked)

    rows = run(work)

    def human() -> None:
        if not rows:
            out.print("no keys")
            return
        table = Table("prefix", "scopes", "label", "created", "revoked")
        for row in rows:
            table.add_row(
                row.prefix,
                row.scopes,
                row.label,
                f"{row.created_at:%Y-%m-%d %H:%M}",
                f"{row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "",
            )
        out.print(table)

    emit([key_dict(row) for row in rows], as_json=as_json, human=human)


@app.command("revoke")
def revoke(
    prefix: Annotated[str, typer.Argument(help="The key's prefix (agk_ and 8 characters).")],
    as_json: JsonOpt = False,
) -> None:
    """Revoke a key at once: its next request is refused (401)."""

    async def work(core: Core) -> ApiKey:
        return await apikeys.revoke(core, actor=Actor.cli(), prefix=prefix)

    row = run(work)
    emit(key_dict(row), as_json=as_json, human=lambda: out.print(f"revoked {row.prefix}"))
