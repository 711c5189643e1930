"""Sending one callback attempt, and what comes after it: delivered, a retry later, or given up.

Invariant: an attempt is recorded only if the row is still pending at the attempts this job was
enqueued for (``cb{id}:{attempts}``), so two runs of one job record one outcome; a crash before the
record leaves the row as it was, and the attempt is made again (the receiver de-duplicates on
``AirGate-Event-Id``: delivery is at least once). Retries back off exponentially with jitter from
``callback_backoff_first_s`` to ``callback_backoff_max_s`` until ``retry_until``.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
from sqlalchemy import bindparam, select, update
from sqlmodel import col

from core.context import Core
from core.errors import InputError
from core.jobs.queue import JobQueue
from core.logging import get_logger
from core.models import CallbackDelivery, CallbackEndpoint, CallbackState, Topup
from core.models.types import utcnow
from core.services.callbacks import guard, signing
from core.services.callbacks.outbox import delivery_t, payload
from core.settings import Settings

log = get_logger(__name__)

# The delivery, its top-up and the party's endpoint (None once removed), in one round trip.
_LOAD = (
    select(CallbackDelivery, Topup, CallbackEndpoint)
    .join(Topup, col(Topup.id) == col(CallbackDelivery.topup_id))
    .outerjoin(CallbackEndpoint, col(CallbackEndpoint.party_id) == col(CallbackDelivery.party_id))
    .where(col(CallbackDelivery.id) == bindparam("id"))
)
JITTER = 0.2  # each gap is drawn from ±20 % of its nominal value, so retries do not come in waves


@dataclass
class CallbackSender:
    """What a worker needs to send callbacks; built once at start-up (core/worker.py)."""

    core: Core
    queue: JobQueue
    http: aiohttp.ClientSession

    @classmethod
    def build(cls, core: Core, queue: JobQueue) -> CallbackSender:
        return cls(core=core, queue=queue, http=client(core.settings))

    async def close(self) -> None:
        await self.http.close()


def client(settings: Settings) -> aiohttp.ClientSession:
    """The HTTP client every callback goes out through: the guard's resolver, the time-out."""
    options = guard.connector_options(allow_private=settings.callback_allow_private)
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=64, **options),
        timeout=aiohttp.ClientTimeout(total=settings.callback_timeout_s),
    )


def backoff_s(attempts: int, *, first_s: float, max_s: float) -> float:
    """Gap after failed POST ``attempts``: first_s doubled each time, capped, jittered."""
    nominal = min(max_s, first_s * 2.0 ** min(attempts - 1, 30))
    return float(min(max_s, nominal * random.uniform(1 - JITTER, 1 + JITTER)))


async def attempt(s: CallbackSender, delivery_id: int, attempts: int) -> str:
    """POST delivery ``delivery_id`` once (if still pending at ``attempts``); its state after."""
    async with s.core.sessions() as session:
        found = (await session.execute(_LOAD, {"id": delivery_id})).first()
    if found is None:
        return "missing"
    row, topup, endpoint = found
    if row.state != CallbackState.PENDING or row.attempts != attempts:
        return row.state
    if endpoint is None:  # removed since: nobody to tell
        return await _record(s, row, status=None, error="no endpoint registered", give_up=True)
    body = payload(topup, event=row.event_id, event_type=row.event_type)
    status, error = await post_signed(s.core, s.http, endpoint, event_id=row.event_id, body=body)
    return await _record(s, row, status=status, error=error)


async def post_signed(
    core: Core,
    http: aiohttp.ClientSession,
    endpoint: CallbackEndpoint,
    *,
    event_id: str,
    body: bytes,
) -> tuple[int | None, str | None]:
    """POST ``body`` signed to ``endpoint``: the receiver's status (None: no answer) and what went
    wrong, if anything."""
    settings = core.settings
    try:
        url = guard.check_url(
            endpoint.url,
            allow_private=settings.callback_allow_private,
            allow_http=settings.callback_allow_http,
        )
    except InputError as exc:  # the settings changed since it was registered
        return None, str(exc)
    now = utcnow()
    secrets = [signing.secret_for(core.pins, endpoint.secret_seed)]
    if endpoint.previous_seed and endpoint.previous_until and endpoint.previous_until > now:
        secrets.append(signing.secret_for(core.pins, endpoint.previous_seed))
    headers = signing.headers(secrets, event_id=event_id, timestamp=int(time.time()), body=body)
    try:
        async with http.post(url, data=body, headers=headers, allow_redirects=False) as resp:
            status = resp.status
    except TimeoutError:
        return None, f"no answer within {settings.callback_timeout_s:g} s"
    except (aiohttp.ClientError, OSError) as exc:
        return None, f"{type(exc).__name__}: {exc}"[:200]
    return status, None if 200 <= status < 300 else f"HTTP {status}"


async def _record(
    s: CallbackSender,
    row: CallbackDelivery,
    *,
    status: int | None,
    error: str | None,
    give_up: bool = False,
) -> str:
    settings = s.core.settings
    now = utcnow()
    tries = row.attempts + 1
    due_at: datetime = now
    if error is None:
        state = CallbackState.DELIVERED
    elif give_up or now >= row.retry_until:
        state = CallbackState.GIVEN_UP
    else:
        state = CallbackState.PENDING
        gap_s = backoff_s(tries, first_s=settings.callback_backoff_first_s,
                          max_s=settings.callback_backoff_max_s)  # fmt: skip
        due_at = min(now + timedelta(seconds=gap_s), row.retry_until)
    async with s.core.transaction() as session:
        moved = (
            await session.execute(
                update(delivery_t)
                .where(
                    delivery_t.c.id == row.id,
                    delivery_t.c.state == CallbackState.PENDING,
                    delivery_t.c.attempts == row.attempts,
                )
                .values(
                    state=state,
                    attempts=tries,
                    due_at=due_at,
                    last_attempt_at=now,
                    last_status=status,
                    last_error=error,
                    delivered_at=now if state == CallbackState.DELIVERED else None,
                )
                .returning(delivery_t.c.id)
            )
        ).first()
    if moved is None:
        return await _state(s, row.id or 0)  # another run recorded this attempt
    log.info(
        "callback.attempt",
        delivery=row.id,
        event_id=row.event_id,
        attempt=tries,
        status=status,
        state=state,
        error=error,
    )
    if state == CallbackState.PENDING:
        defer_s = max(0.0, (due_at - utcnow()).total_seconds())
        await s.queue.callback(row.id or 0, attempts=tries, defer_s=defer_s)
    return state


async def _state(s: CallbackSender, delivery_id: int) -> str:
    async with s.core.sessions() as session:
        found = await session.execute(
            select(delivery_t.c.state).where(delivery_t.c.id == delivery_id)
        )
        return str(found.scalar_one())
