"""A party's callback endpoint: register (or replace) it, look at it, rotate its secret, remove it;
its delivery log, and sending a delivery again.

Invariant: a party has at most one endpoint. Its signing secret is shown once, when the endpoint
is first registered or its secret rotated (core/services/callbacks/signing.py: it is derived, not
stored); replacing the URL keeps the secret. A rotation keeps the previous secret signing as well
for ``callback_rotation_grace_s``, so a receiver can switch without losing a callback.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from core.context import Core
from core.errors import InputError, NotFound
from core.jobs.queue import JobQueue
from core.models import CallbackDelivery, CallbackEndpoint, CallbackState, Party
from core.models.types import utcnow
from core.services import audit
from core.services.audit import Actor
from core.services.callbacks import guard, signing

LOG_LIMIT_MAX = 200


@dataclass(frozen=True, slots=True)
class Endpoint:
    party_id: int
    url: str
    created_at: datetime
    updated_at: datetime
    previous_secret_until: datetime | None  # a rotation's grace: the old secret signs until then

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "previous_secret_until": (
                self.previous_secret_until.isoformat() if self.previous_secret_until else None
            ),
        }


@dataclass(frozen=True, slots=True)
class Registered:
    endpoint: Endpoint
    created: bool
    secret: str | None = field(repr=False)  # shown once: a new endpoint or a rotation


def _view(row: CallbackEndpoint) -> Endpoint:
    grace = row.previous_until if row.previous_until and row.previous_until > utcnow() else None
    return Endpoint(
        party_id=row.party_id,
        url=row.url,
        created_at=row.created_at,
        updated_at=row.updated_at,
        previous_secret_until=grace,
    )


def _checked(core: Core, url: str) -> str:
    return guard.check_url(
        url,
        allow_private=core.settings.callback_allow_private,
        allow_http=core.settings.callback_allow_http,
    )


async def register(core: Core, *, actor: Actor, party_id: int, url: str) -> Registered:
    """Register ``url`` for ``party_id``, or replace its endpoint's URL (keeping the secret)."""
    checked = _checked(core, url)
    try:
        return await _register(core, actor=actor, party_id=party_id, url=checked)
    except IntegrityError:  # registered at the same moment by another request: replace its URL
        return await _register(core, actor=actor, party_id=party_id, url=checked)


async def _register(core: Core, *, actor: Actor, party_id: int, url: str) -> Registered:
    checked = url
    async with core.transaction() as session:
        if await session.get(Party, party_id) is None:
            raise NotFound(kind="party", key=party_id)
        row = await session.get(CallbackEndpoint, party_id, with_for_update=True)
        now = utcnow()
        await audit.record(
            session,
            actor=actor,
            action="callback.set",
            subject_party_id=party_id,
            details={"host": guard.host_of(checked), "replaced": row is not None},
        )
        if row is not None:
            row.url, row.updated_at = checked, now
            return Registered(endpoint=_view(row), created=False, secret=None)
        row = CallbackEndpoint(
            party_id=party_id, url=checked, secret_seed=secrets.token_hex(32), created_at=now,
            updated_at=now,
        )  # fmt: skip
        session.add(row)
        secret = signing.secret_for(core.pins, row.secret_seed)
        return Registered(endpoint=_view(row), created=True, secret=secret)


async def get(core: Core, *, party_id: int) -> Endpoint | None:
    async with core.sessions() as session:
        row = await session.get(CallbackEndpoint, party_id)
        return _view(row) if row else None


async def remove(core: Core, *, actor: Actor, party_id: int) -> bool:
    """Remove the endpoint; False if there was none. Pending deliveries are then given up."""
    async with core.transaction() as session:
        row = await session.get(CallbackEndpoint, party_id)
        if row is None:
            return False
        await session.delete(row)
        await audit.record(
            session, actor=actor, action="callback.remove", subject_party_id=party_id
        )
        return True


async def rotate_secret(core: Core, *, actor: Actor, party_id: int) -> Registered:
    """A new secret (returned, shown once); the old one still signs for the grace period."""
    async with core.transaction() as session:
        row = await session.get(CallbackEndpoint, party_id, with_for_update=True)
        if row is None:
            raise NotFound(kind="callback endpoint", key=party_id)
        now = utcnow()
        grace_s = core.settings.callback_rotation_grace_s
        row.previous_seed = row.secret_seed if grace_s else None
        row.previous_until = now + timedelta(seconds=grace_s) if grace_s else None
        row.secret_seed = secrets.token_hex(32)
        row.updated_at = now
        await audit.record(
            session, actor=actor, action="callback.rotate", subject_party_id=party_id
        )
        secret = signing.secret_for(core.pins, row.secret_seed)
        return Registered(endpoint=_view(row), created=False, secret=secret)


def delivery_dict(row: CallbackDelivery) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": row.id,
        "event_id": row.event_id,
        "type": row.event_type,
        "reference": row.topup_id,
        "state": row.state,
        "attempts": row.attempts,
        "last_status": row.last_status,
        "last_error": row.last_error,
        "created_at": iso(row.created_at),
        "last_attempt_at": iso(row.last_attempt_at),
        "next_attempt_at": iso(row.due_at) if row.state == CallbackState.PENDING else None,
        "retry_until": iso(row.retry_until),
        "delivered_at": iso(row.delivered_at),
    }


async def deliveries(
    core: Core,
    *,
    party_id: int,
    limit: int = 50,
    before_id: int | None = None,
    state: str | None = None,
) -> list[CallbackDelivery]:
    """The party's deliveries, newest first (``before_id``: the page after that one)."""
    limit = max(1, min(limit, LOG_LIMIT_MAX))
    query = select(CallbackDelivery).where(col(CallbackDelivery.party_id) == party_id)
    if before_id is not None:
        query = query.where(col(CallbackDelivery.id) < before_id)
    if state is not None:
        query = query.where(col(CallbackDelivery.state) == state)
    async with core.sessions() as session:
        rows = await session.execute(query.order_by(col(CallbackDelivery.id).desc()).limit(limit))
        return list(rows.scalars())


async def resend(
    core: Core, queue: JobQueue, *, actor: Actor, party_id: int, delivery_id: int
) -> CallbackDelivery:
    """Send a delivered or given-up callback again, with a fresh retry window."""
    async with core.transaction() as session:
        row = await session.get(CallbackDelivery, delivery_id, with_for_update=True)
        if row is None or row.party_id != party_id:
            raise NotFound(kind="callback delivery", key=delivery_id)
        if await session.get(CallbackEndpoint, party_id) is None:
            raise NotFound(kind="callback endpoint", key=party_id)
        if row.state == CallbackState.PENDING:
            raise InputError(
                reason=f"delivery {delivery_id} is still being retried "
                f"(next attempt at {row.due_at:%Y-%m-%d %H:%M:%S} UTC)"
            )
        now = utcnow()
        row.state, row.due_at, row.delivered_at = CallbackState.PENDING, now, None
        row.retry_until = now + timedelta(seconds=core.settings.callback_window_s)
        attempts = row.attempts
        await audit.record(
            session,
            actor=actor,
            action="callback.resend",
            subject_party_id=party_id,
            reference=row.event_id,
        )
    await queue.callback(delivery_id, attempts=attempts)
    return row
