"""A broadcast's report: how many recipients were sent, failed, blocked the bot or are unconfirmed,
and its wording (progress while sending, the final report once done)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from core.context import Core
from core.errors import NotFound
from core.i18n import t
from core.models import Broadcast, BroadcastRecipient, BroadcastState, RecipientState

recipient_t = BroadcastRecipient.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Report:
    broadcast_id: int
    total: int
    sent: int
    failed: int
    blocked: int
    unconfirmed: int
    pending: int  # pending or being sent
    done: bool


async def report(core: Core, broadcast_id: int) -> Report:
    async with core.sessions() as session:
        row = await session.get(Broadcast, broadcast_id)
        if row is None:
            raise NotFound(kind="broadcast", key=str(broadcast_id))
        states: dict[str, int] = dict(
            (
                await session.execute(
                    select(recipient_t.c.state, func.count())
                    .where(recipient_t.c.broadcast_id == broadcast_id)
                    .group_by(recipient_t.c.state)
                )
            ).all()
        )
    n = {state: int(states.get(state, 0)) for state in RecipientState}
    return Report(
        broadcast_id=broadcast_id,
        total=row.total,
        sent=n[RecipientState.SENT],
        failed=n[RecipientState.FAILED],
        blocked=n[RecipientState.BLOCKED],
        unconfirmed=n[RecipientState.UNCONFIRMED],
        pending=n[RecipientState.PENDING] + n[RecipientState.SENDING],
        done=row.state == BroadcastState.DONE,
    )


def describe(lang: str, r: Report) -> str:
    fields = dict(
        id=r.broadcast_id,
        sent=r.sent,
        total=r.total,
        failed=r.failed,
        blocked=r.blocked,
        unconfirmed=r.unconfirmed,
    )
    return t(lang, "broadcast.report" if r.done else "broadcast.progress", **fields)
