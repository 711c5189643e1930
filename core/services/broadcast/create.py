"""Confirming a broadcast: the audience is resolved and every recipient row written in one
transaction keyed by the confirming turn, so a retried confirmation finds the same broadcast."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.context import Core
from core.errors import NotFound, NotPermitted
from core.logging import get_logger
from core.models import Broadcast, BroadcastRecipient, Party, RecipientState, Role
from core.services import identities
from core.services.audit import Actor, record
from core.services.broadcast.audience import Audience, Preview, preview_of, recipients
from core.services.notify import SMS, TELEGRAM

log = get_logger(__name__)

recipient_t = BroadcastRecipient.__table__  # type: ignore[attr-defined]

MAX_TEXT = 300  # fits an SMS pair with the sender's name in front, and a USSD preview's excerpt


@dataclass(frozen=True, slots=True)
class Created:
    id: int
    preview: Preview
    new: bool  # False: this key's broadcast existed (a retried confirmation)


async def create(
    core: Core,
    *,
    distributor_id: int,
    text: str,
    audience: Audience,
    key: str,
    actor: Actor,
) -> Created:
    """Fix the audience and write the broadcast with all its recipients, once per ``key``.
    The caller enqueues it (:meth:`core.jobs.queue.JobQueue.broadcast`)."""
    text = " ".join(text.split())[:MAX_TEXT]
    if not text:
        raise NotPermitted(reason="the message is empty")
    rows = await recipients(core, distributor_id, audience)
    if not rows:
        raise NotFound(kind="recipient", key=str(audience))
    async with core.sessions() as session:
        found = await _by_key(session, key)
    if found is not None:
        return found
    chat = await _progress_chat(core, distributor_id)
    try:
        created = await _write(core, distributor_id, chat, text, audience, key, rows, actor)
    except IntegrityError:  # the same confirmation, concurrently: the other one wrote it
        async with core.sessions() as session:
            found = await _by_key(session, key)
        if found is None:
            raise
        return found
    log.info("broadcast.created", broadcast=created.id, recipients=len(rows))
    return created


async def _progress_chat(core: Core, distributor_id: int) -> str | None:
    """The distributor's chat for the progress message (None: it has none, or it blocked the
    bot); NotPermitted unless it is a distributor."""
    async with core.sessions() as session:
        distributor = await session.get(Party, distributor_id)
        chat = await identities.address(session, party_id=distributor_id, channel=TELEGRAM)
    if distributor is None or distributor.role != Role.DISTRIBUTOR:
        raise NotPermitted(reason="only a distributor broadcasts")
    return chat


async def _write(
    core: Core,
    distributor_id: int,
    chat: str | None,
    text: str,
    audience: Audience,
    key: str,
    rows: list[dict[str, Any]],
    actor: Actor,
) -> Created:
    """The broadcast row, its recipients and the audit entry, in one transaction."""
    async with core.transaction() as session:
        row = Broadcast(
            party_id=distributor_id,
            key=key,
            text=text,
            audience=str(audience),
            total=len(rows),
            progress_chat_id=int(chat) if core.settings.telegram_token and chat else None,
        )
        session.add(row)
        await session.flush()
        assert row.id is not None
        await session.execute(
            recipient_t.insert(),
            [{**r, "broadcast_id": row.id, "state": RecipientState.PENDING} for r in rows],
        )
        await record(
            session,
            actor=actor,
            action="broadcast.create",
            reference=f"broadcast:{row.id}",
            details={"audience": str(audience), "recipients": len(rows)},
        )
        return Created(row.id, preview_of(rows), new=True)


async def _by_key(session: AsyncSession, key: str) -> Created | None:
    row = (await session.execute(select(Broadcast).where(col(Broadcast.key) == key))).scalar()
    if row is None or row.id is None:
        return None
    counts = await _counts_by_via(session, row.id)
    return Created(row.id, Preview(row.total, counts.get(TELEGRAM, 0), counts.get(SMS, 0)), False)


async def _counts_by_via(session: AsyncSession, broadcast_id: int) -> dict[str, int]:
    rows = await session.execute(
        select(recipient_t.c.via, func.count())
        .where(recipient_t.c.broadcast_id == broadcast_id)
        .group_by(recipient_t.c.via)
    )
    return {via: int(n) for via, n in rows.all()}
