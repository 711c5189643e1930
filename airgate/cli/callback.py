"""``airgate callback …``: a party's outcome-callback URL, its secret, its delivery log."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from airgate.cli._run import JsonOpt, emit, out, run
from airgate.cli.party import PartyArg
from core.context import Core
from core.jobs.queue import JobQueue
from core.models import CallbackDelivery, CallbackState
from core.redis import redis_for
from core.services import callbacks
from core.services.audit import Actor
from core.services.chain import get_party

app = typer.Typer(
    no_args_is_help=True,
    help="Outcome callbacks: where a party's final top-ups are POSTed, signed (docs/API.md).",
)
SHOWN_ONCE = "the signing secret (shown once; keep it where the receiver can read it):"


async def _party_id(core: Core, ref: str) -> int:
    async with core.sessions() as session:
        party = await get_party(session, ref, country=core.settings.country)
    return party.id or 0


def _print_registered(done: callbacks.Registered) -> None:
    out.print(f"callbacks go to {done.endpoint.url}")
    if done.secret:
        out.print(SHOWN_ONCE)
        out.print(done.secret, soft_wrap=True)
    if done.endpoint.previous_secret_until:
        until = f"{done.endpoint.previous_secret_until:%Y-%m-%d %H:%M} UTC"
        out.print(f"the previous secret also signs until {until}")


def _registered(done: callbacks.Registered) -> dict[str, Any]:
    return {**done.endpoint.as_dict(), "created": done.created, "secret": done.secret}


@app.command("set")
def set_(party: PartyArg, url: str, as_json: JsonOpt = False) -> None:
    """Register the party's callback URL, or replace it (the secret is kept)."""

    async def work(core: Core) -> callbacks.Registered:
        party_id = await _party_id(core, party)
        return await callbacks.register(core, actor=Actor.cli(), party_id=party_id, url=url)

    done = run(work)
    emit(_registered(done), as_json=as_json, human=lambda: _print_registered(done))


@app.command("rotate")
def rotate(party: PartyArg, as_json: JsonOpt = False) -> None:
    """A new signing secret; the previous one also signs during the grace period."""

    async def work(core: Core) -> callbacks.Registered:
        party_id = await _party_id(core, party)
        return await callbacks.rotate_secret(core, actor=Actor.cli(), party_id=party_id)

    done = run(work)
    emit(_registered(done), as_json=as_json, human=lambda: _print_registered(done))


@app.command("remove")
def remove(party: PartyArg, as_json: JsonOpt = False) -> None:
    """Stop sending callbacks to the party (pending ones are given up)."""

    async def work(core: Core) -> bool:
        party_id = await _party_id(core, party)
        return await callbacks.remove(core, actor=Actor.cli(), party_id=party_id)

    removed = run(work)
    emit(
        {"removed": removed},
        as_json=as_json,
        human=lambda: out.print("removed" if removed else "no callback URL was registered"),
    )


def _table(rows: list[CallbackDelivery]) -> Table:
    table = Table("id", "event", "type", "state", "tries", "last", "created (UTC)", "next (UTC)")
    for row in rows:
        shown = callbacks.delivery_dict(row)
        last = row.last_error or (str(row.last_status) if row.last_status else "")
        nxt = shown["next_attempt_at"]
        table.add_row(
            str(row.id), row.event_id, row.event_type, row.state, str(row.attempts), last,
            f"{row.created_at:%Y-%m-%d %H:%M:%S}", nxt[:19].replace("T", " ") if nxt else "",
        )  # fmt: skip
    return table


@app.command("show")
def show(party: PartyArg, as_json: JsonOpt = False) -> None:
    """The party's callback URL and its latest deliveries (never the secret)."""

    async def work(core: Core) -> tuple[callbacks.Endpoint | None, list[CallbackDelivery]]:
        party_id = await _party_id(core, party)
        endpoint = await callbacks.get(core, party_id=party_id)
        return endpoint, await callbacks.deliveries(core, party_id=party_id, limit=10)

    endpoint, rows = run(work)

    def human() -> None:
        if endpoint is None:
            out.print("no callback URL registered")
        else:
            out.print(f"callbacks go to {endpoint.url} (since {endpoint.updated_at:%Y-%m-%d})")
        if rows:
            out.print(_table(rows))

    data = {
        "endpoint": endpoint.as_dict() if endpoint else None,
        "deliveries": [callbacks.delivery_dict(r) for r in rows],
    }
    emit(data, as_json=as_json, human=human)


@app.command("log")
def log(
    party: PartyArg,
    state: Annotated[
        CallbackState | None, typer.Option(help="Only deliveries in this state.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The party's callback deliveries, newest first."""

    async def work(core: Core) -> list[CallbackDelivery]:
        party_id = await _party_id(core, party)
        return await callbacks.deliveries(core, party_id=party_id, limit=limit, state=state)

    rows = run(work)
    emit(
        [callbacks.delivery_dict(r) for r in rows],
        as_json=as_json,
        human=lambda: out.print(_table(rows) if rows else "no deliveries"),
    )


@app.command("resend")
def resend(party: PartyArg, delivery: int, as_json: JsonOpt = False) -> None:
    """Send a delivered or given-up callback again (with a fresh retry window)."""

    async def work(core: Core) -> CallbackDelivery:
        party_id = await _party_id(core, party)
        s = core.settings
        async with redis_for(configured=s.redis_url, var_dir=s.var_dir) as url:
            queue = await JobQueue.connect(s.queue_redis_url or url)
            try:
                return await callbacks.resend(
                    core, queue, actor=Actor.cli(), party_id=party_id, delivery_id=delivery
                )
            finally:
                await queue.close()

    row = run(work)
    emit(
        callbacks.delivery_dict(row),
        as_json=as_json,
        human=lambda: out.print(f"delivery {row.id} ({row.event_id}) queued to be sent again"),
    )


@app.command("ping")
def ping(party: PartyArg, as_json: JsonOpt = False) -> None:
    """POST a signed test event (type ping) to the party's URL now; exit 1 unless it answers 2xx."""

    async def work(core: Core) -> callbacks.Ping:
        party_id = await _party_id(core, party)
        return await callbacks.ping(core, actor=Actor.cli(), party_id=party_id)

    sent = run(work)
    emit(
        {"event_id": sent.event_id, "ok": sent.ok, "status": sent.status, "error": sent.error},
        as_json=as_json,
        human=lambda: out.print(
            f"{sent.event_id}: answered {sent.status}"
            if sent.ok
            else f"{sent.event_id}: {sent.error}"
        ),
    )
    if not sent.ok:
        raise typer.Exit(1)
