"""The sweeper: resumes whatever a crash, a lost job or an unreachable Redis left behind.

Invariant: every open top-up has a row whose ``due_at`` says when it should next be worked on and
whose ``(sends, checks)`` names its next job. A row overdue by more than ``sweeper_stale_s`` is
re-enqueued under that same job id: if the job still exists, arq refuses the copy; if it is gone
(the enqueue after commit never happened, Redis lost it), the copy resumes the top-up, which then
asks the provider before sending anything. Pending notifications older than the same delay are
re-sent the same way, and a broadcast still sending whose sender's lease has lapsed (its worker
died) is enqueued again (core/services/broadcast/sender.py: the lease keeps it to one sender), and
so is a pending outcome callback overdue by that delay (core/services/callbacks/outbox.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlmodel import col

from core.context import Core
from core.jobs.queue import JobQueue
from core.models import Notification, NotificationState, Topup
from core.models.topup import OPEN_STATES
from core.models.types import utcnow
from core.services import broadcast
from core.services.callbacks import outbox as callbacks

BATCH = 1_000  # rows per sweep and kind; the next sweep takes the rest


@dataclass(frozen=True, slots=True)
class SweepReport:
    topups_overdue: int
    topups_resumed: int
    notifications_resumed: int
    broadcasts_resumed: int = 0
    callbacks_resumed: int = 0


async def sweep(core: Core, queue: JobQueue) -> SweepReport:
    cutoff = utcnow() - timedelta(seconds=core.settings.sweeper_stale_s)
    async with core.sessions() as session:
        overdue = (
            await session.execute(
                select(col(Topup.id), col(Topup.sends), col(Topup.checks))
                .where(col(Topup.state).in_(OPEN_STATES), col(Topup.due_at) < cutoff)
                .order_by(col(Topup.due_at))
                .limit(BATCH)
            )
        ).all()
        notes = (
            await session.execute(
                select(col(Notification.id), col(Notification.attempts))
                .where(
                    col(Notification.state) == NotificationState.PENDING,
                    col(Notification.created_at) < cutoff,
                )
                .order_by(col(Notification.id))
                .limit(BATCH)
            )
        ).all()
    resumed = 0
    for topup_id, sends, checks in overdue:
        resumed += await queue.deliver(topup_id, sends=sends, checks=checks, fresh=False)
    renotified = 0
    for note_id, attempts in notes:
        renotified += await queue.notify(int(note_id or 0), attempts=attempts)
    rebroadcast = 0
    for broadcast_id in await broadcast.open_broadcasts(core):
        if not await broadcast.leased(queue.redis, broadcast_id):  # nobody is sending it
            rebroadcast += await queue.broadcast(broadcast_id, part=int(time.time()))
    stale_s = core.settings.sweeper_stale_s
    return SweepReport(
        topups_overdue=len(overdue),
        topups_resumed=resumed,
        notifications_resumed=renotified,
        broadcasts_resumed=rebroadcast,
        callbacks_resumed=await callbacks.sweep(core.sessions, queue, stale_s=stale_s),
    )
