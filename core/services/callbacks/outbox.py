"""The outbox of callbacks: the rows a final top-up owes, what each POST says, and the sweep.

Invariant: the deliveries a top-up's final outcome owes are written by :func:`owe` in the
transaction that made it final (core/services/finish.py), one per party with an endpoint among
the retailer and its distributor, unique per (event, party); a job is enqueued after the commit
(``cb{id}:{attempts}``). A crash between the commit and the enqueue, or a job Redis lost, is found
again by :func:`overdue` (the sweeper): a pending row past its ``due_at``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.jobs.queue import JobQueue
from core.logging import get_logger
from core.models import CallbackDelivery, CallbackEndpoint, CallbackState, Party, Topup
from core.models.types import UtcDateTime, utcnow
from core.msisdn import masked

log = get_logger(__name__)
delivery_t = CallbackDelivery.__table__  # type: ignore[attr-defined]
endpoint_t = CallbackEndpoint.__table__  # type: ignore[attr-defined]
party_t = Party.__table__  # type: ignore[attr-defined]
topup_t = Topup.__table__  # type: ignore[attr-defined]

BATCH = 1_000  # overdue rows per sweep; the next sweep takes the rest
EVENT_PREFIX = "evt_"

# One statement writes what a batch owes: a row per final top-up and endpoint of its retailer or of
# the retailer's parent. The event's id and type come from the top-up's id and (final) state.
_OWE = (
    insert(delivery_t)
    .from_select(
        ["event_id", "event_type", "party_id", "topup_id", "state", "attempts", "due_at",
         "created_at", "retry_until"],
        select(
            literal(EVENT_PREFIX) + topup_t.c.id,
            literal("topup.") + topup_t.c.state,
            endpoint_t.c.party_id,
            topup_t.c.id,
            literal(CallbackState.PENDING.value),
            literal(0),
            bindparam("now", type_=UtcDateTime),
            bindparam("now", type_=UtcDateTime),
            bindparam("until", type_=UtcDateTime),
        )
        .select_from(
            topup_t.join(party_t, party_t.c.id == topup_t.c.party_id).join(
                endpoint_t,
                or_(
                    endpoint_t.c.party_id == party_t.c.id,
                    endpoint_t.c.party_id == party_t.c.parent_id,
                ),
            )
        )
        .where(topup_t.c.id.in_(bindparam("ids", expanding=True))),
    )
    .returning(delivery_t.c.id)
)  # fmt: skip


def event_id(topup_id: str) -> str:
    """One final outcome per top-up, so one event: the id a receiver de-duplicates on."""
    return EVENT_PREFIX + topup_id


async def owe(session: AsyncSession, topup_ids: Sequence[str], *, window_s: int) -> list[int]:
    """Record, in the caller's transaction, the callbacks owed for the top-ups ``topup_ids`` (made
    final in this transaction); the new rows' ids."""
    if not topup_ids:
        return []
    now = utcnow()
    params = {"ids": list(topup_ids), "now": now, "until": now + timedelta(seconds=window_s)}
    return list((await session.execute(_OWE, params)).scalars())


async def enqueue(queue: JobQueue, ids: Sequence[int]) -> None:
    """After the commit: a job per new row. Never raises (the commit stands; the sweeper resumes
    any row whose job did not make it)."""
    for delivery_id in ids:
        try:
            await queue.callback(delivery_id, attempts=0)
        except Exception as exc:  # noqa: BLE001 - after a commit nothing may undo the caller
            log.warning("callback.enqueue_failed", delivery=delivery_id, error=type(exc).__name__)


async def overdue(session: AsyncSession, *, stale_s: int) -> list[tuple[int, int]]:
    """Pending deliveries overdue by more than ``stale_s``: (id, attempts) to enqueue again."""
    cutoff = utcnow() - timedelta(seconds=stale_s)
    rows = await session.execute(
        select(delivery_t.c.id, delivery_t.c.attempts)
        .where(delivery_t.c.state == CallbackState.PENDING, delivery_t.c.due_at < cutoff)
        .order_by(delivery_t.c.due_at)
        .limit(BATCH)
    )
    return [(int(i), int(a)) for i, a in rows]


async def sweep(session_maker: Any, queue: JobQueue, *, stale_s: int) -> int:
    """Enqueue every overdue delivery again under its own job id; how many were (re)queued."""
    async with session_maker() as session:
        found = await overdue(session, stale_s=stale_s)
    resumed = 0
    for delivery_id, attempts in found:
        resumed += await queue.callback(delivery_id, attempts=attempts)
    return resumed


async def backlog(session: AsyncSession) -> dict[str, int]:
    """What an operator alerts on: deliveries pending now, and given up in the last day."""
    day_ago = utcnow() - timedelta(days=1)
    pending = select(func.count()).where(delivery_t.c.state == CallbackState.PENDING)
    given_up = select(func.count()).where(
        delivery_t.c.state == CallbackState.GIVEN_UP, delivery_t.c.last_attempt_at >= day_ago
    )
    return {
        "pending": int((await session.execute(pending)).scalar_one()),
        "given_up_24h": int((await session.execute(given_up)).scalar_one()),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def payload(topup: Topup, *, event: str, event_type: str) -> bytes:
    """The body of every POST of one event (the same bytes each attempt): ``data`` is the top-up
    as ``GET /api/v1/topups/{id}`` shows it (api/topups.py), the customer's number masked."""
    body = {
        "id": event,
        "type": event_type,
        "created_at": _iso(topup.final_at),
        "data": {
            "id": topup.id,
            "state": topup.state,
            "retailer_id": topup.party_id,
            "msisdn": masked(topup.msisdn),
            "operator": topup.operator_code,
            "product": topup.product_code,
            "kind": topup.kind,
            "amount_minor": topup.amount_minor,
            "currency": topup.currency,
            "channel": topup.channel,
            "created_at": _iso(topup.created_at),
            "final_at": _iso(topup.final_at),
        },
    }
    return json.dumps(body, separators=(",", ":")).encode()
