"""``airgate case list|show|resolve``: support cases at the console (the platform's seat)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from airgate.cli._run import JsonOpt, emit, out, run
from airgate.cli.topup import _pin_asked_once, local, zone_name
from core.context import Core
from core.i18n import t
from core.jobs.queue import JobQueue
from core.models import CaseState
from core.msisdn import national
from core.redis import redis_for
from core.services import case_views, cases, parties
from core.services.audit import Actor
from core.services.chain import get_party
from core.services.notify import Message
from core.services.requests.messages import enqueue

app = typer.Typer(no_args_is_help=True, help="Support cases: list them, show one, resolve one.")


@asynccontextmanager
async def _queue(core: Core) -> AsyncIterator[JobQueue]:
    s = core.settings
    async with redis_for(configured=s.redis_url, var_dir=s.var_dir) as url:
        queue = await JobQueue.connect(s.queue_redis_url or url)
        try:
            yield queue
        finally:
            await queue.close()


@app.command("list")
def list_cases(
    all_: Annotated[bool, typer.Option("--all", help="Resolved ones too.")] = False,
    escalated: Annotated[
        bool, typer.Option("--escalated", help="Only those handed to the platform.")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Open cases, oldest first (--all: every case)."""

    async def work(core: Core) -> tuple[list[case_views.CaseView], str]:
        state = None if all_ else CaseState.OPEN
        found = await case_views.listed(core, state=state, escalated=escalated, limit=limit)
        return found, core.settings.timezone

    found, zone = run(work)

    def human() -> None:
        if not found:
            out.print("no cases")
            return
        table = Table(box=box.SIMPLE, pad_edge=False)
        for name in ("case", "reason", "state", "shop", "amount", f"opened ({zone_name(zone)})"):
            table.add_column(name)
        for view in found:
            fields = case_views.fields_of(view)
            state = view.resolution or ("escalated" if view.escalated_at else view.state)
            table.add_row(
                str(view.id),
                view.reason,
                state,
                view.shop_name[:16],
                str(fields["amount"]),
                local(view.opened_at, zone),
            )
        out.print(table)

    emit([v.as_json() for v in found], as_json=as_json, human=human)


@app.command("show")
def show(
    case_id: Annotated[int, typer.Argument(help="The case number.")], as_json: JsonOpt = False
) -> None:
    """One case: its top-up, shop, evidence and how it ended."""

    async def work(core: Core) -> tuple[case_views.CaseView, str]:
        return await case_views.get(core, case_id), core.settings.timezone

    view, zone = run(work)

    def human() -> None:
        fields = case_views.fields_of(view)
        lines = [
            f"case {view.id}: {view.reason}, {view.resolution or view.state}"
            + (" (escalated to the platform)" if view.escalated_at else ""),
            f"shop: {view.shop_name} {national(view.shop_msisdn)}",
            f"top-up: {fields['ref']} {fields['amount']} to {fields['number']}"
            f" ({view.topup_state or '-'})",
            f"opened: {local(view.opened_at, zone)} {zone_name(zone)}",
        ]
        if view.resolved_at:
            lines.append(f"resolved: {local(view.resolved_at, zone)} by {view.resolved_by}")
        if view.note:
            lines.append(f"note: {view.note}")
        for name, value in view.evidence.items():
            lines.append(f"evidence {name}: {value}")
        out.print("\n".join(lines), soft_wrap=True)

    emit(view.as_json(), as_json=as_json, human=human)


@app.command("resolve")
def resolve(
    case_id: Annotated[int, typer.Argument(help="The case number.")],
    action: Annotated[
        cases.Action,
        typer.Option(
            "--action",
            help="delivered / failed: settle a held top-up (needs --note, the evidence); retry: "
            "send again under the same reference; refund: release a held top-up, or give a "
            "delivered one's stock back from the distributor (needs --note); close: a note only.",
        ),
    ],
    note: Annotated[str | None, typer.Option(help="The evidence, reason or note.")] = None,
    as_party: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="Act as this distributor (its PIN is asked): retry, refund or close only.",
        ),
    ] = None,
    pin_stdin: Annotated[
        bool, typer.Option("--pin-stdin", help="Read the PIN from stdin.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Settle a case as the platform, or as the retailer's distributor (--as); the retailer is
    told."""
    pin = _pin_asked_once(from_stdin=pin_stdin) if as_party is not None else None

    async def work(core: Core) -> cases.Done:
        actor, distributor_id = Actor.cli(), None
        if as_party is not None and pin is not None:
            async with core.sessions() as session:
                party = await get_party(session, as_party, country=core.settings.country)
            await parties.check_pin(core, party_id=party.id or 0, pin=pin, channel="cli")
            actor, distributor_id = Actor.party(party.id or 0, "cli"), party.id
        async with _queue(core) as queue:

            async def outbox(owed: Sequence[Message]) -> None:
                await enqueue(queue, owed)

            async def requeue(topup_id: str, sends: int, checks: int) -> None:
                await queue.deliver(topup_id, sends=sends, checks=checks, fresh=False)

            return await cases.resolve(
                core,
                case_id=case_id,
                action=action,
                actor=actor,
                outbox=outbox,
                note=note,
                distributor_id=distributor_id,
                requeue=requeue,
            )

    done = run(work)
    data: dict[str, Any] = {"case": done.case_id, "result": done.key.rpartition(".")[2]}
    emit(data, as_json=as_json, human=lambda: out.print(t("en", done.key, **done.fields)))
