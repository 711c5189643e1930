"""The worker's broadcast sender: at most once per recipient, one sender per broadcast at a time.

A row is claimed (``pending → sending``, committed) before its message goes out, and a Redis lease
(renewed while it runs) keeps other senders off the broadcast; a sender taking over a dead one's
broadcast marks what it left in ``sending`` as ``unconfirmed``, never sends it again. "Not sent"
(429, refused, 5xx) goes back to ``pending``; "maybe sent" (a time-out) is ``unconfirmed``.
Telegram sends are paced by the shared limiter; SMS go in batches. A sender works for a time
budget, then the job enqueues the next part; the sweeper re-enqueues a broadcast whose lease
lapsed (:func:`open_broadcasts`, :func:`leased`).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import and_, bindparam, select, update

from core.context import Core
from core.errors import (
    NotFound,
    OutcomeUnknown,
    ProviderRejected,
    ProviderUnavailable,
    RecipientBlocked,
    Throttled,
)
from core.logging import get_logger
from core.models import Broadcast, BroadcastRecipient, BroadcastState, Party, RecipientState
from core.models.types import utcnow
from core.providers.port import SmsSender
from core.providers.telegram import TelegramSender
from core.services.broadcast.progress import Progress
from core.services.broadcast.report import describe, report
from core.services.notify import SMS, TELEGRAM, mark_blocked
from core.stores import redis_errors

log = get_logger(__name__)

party_t = Party.__table__  # type: ignore[attr-defined]
broadcast_t = Broadcast.__table__  # type: ignore[attr-defined]
recipient_t = BroadcastRecipient.__table__  # type: ignore[attr-defined]

LEASE_PREFIX = "airgate:bc:lease:"
LEASE_S = 10.0  # a sender renews its lease every LEASE_S / 3; a dead one's lapses after this
SMS_BATCH = 100
FETCH = 500  # pending rows read per round
MAX_ATTEMPTS = 5  # "not sent" answers before a recipient is given up as failed


_CLAIM = (
    update(recipient_t)
    .where(
        recipient_t.c.id.in_(bindparam("ids", expanding=True)),
        recipient_t.c.state == RecipientState.PENDING,
    )
    .values(state=RecipientState.SENDING, attempts=recipient_t.c.attempts + 1)
    .returning(recipient_t.c.id)
)
_SET = update(recipient_t).where(recipient_t.c.id.in_(bindparam("ids", expanding=True)))


@dataclass(slots=True)
class _Row:
    id: int
    party_id: int
    via: str  # a notify.Via
    recipient: str
    attempts: int
    msisdn: str  # where an SMS goes (a Telegram row's too, if the bot was turned off meanwhile)


class Sender:
    """Sends broadcasts from the worker; one instance per worker process."""

    def __init__(
        self,
        *,
        core: Core,
        redis: aioredis.Redis,
        sms: SmsSender,
        telegram: TelegramSender | None,
        concurrency: int = 8,
    ) -> None:
        self.core = core
        self.redis = redis
        self.sms = sms
        self.telegram = telegram
        self.concurrency = concurrency

    async def run(self, broadcast_id: int, *, budget_s: float) -> bool:
        """Send for at most ``budget_s``; True once the broadcast is done (or someone else is on
        it: their job finishes it), False if there is more to send."""
        token = secrets.token_hex(8)
        lease = f"{LEASE_PREFIX}{broadcast_id}"
        with redis_errors():
            taken = await self.redis.set(lease, token, nx=True, px=int(LEASE_S * 1000))
        if not taken:
            log.info("broadcast.busy", broadcast=broadcast_id)
            return True
        renewer = asyncio.create_task(self._renew(lease, token))
        try:
            return await self._run(broadcast_id, time.monotonic() + budget_s)
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            with redis_errors():
                if await self.redis.get(lease) == token.encode():
                    await self.redis.delete(lease)

    async def _renew(self, lease: str, token: str) -> None:
        while True:
            await asyncio.sleep(LEASE_S / 3)
            if await self.redis.get(lease) != token.encode():
                log.error("broadcast.lease_lost", lease=lease)
                return
            await self.redis.pexpire(lease, int(LEASE_S * 1000))

    async def _run(self, broadcast_id: int, deadline: float) -> bool:
        async with self.core.sessions() as session:
            row = await session.get(Broadcast, broadcast_id)
            author = await session.get(Party, row.party_id) if row else None
        if row is None or author is None:
            raise NotFound(kind="broadcast", key=str(broadcast_id))
        if row.state == BroadcastState.DONE:
            return True
        async with self.core.transaction() as session:  # what a dead sender left half-done
            left = await session.execute(
                update(recipient_t)
                .where(
                    recipient_t.c.broadcast_id == broadcast_id,
                    recipient_t.c.state == RecipientState.SENDING,
                )
                .values(state=RecipientState.UNCONFIRMED, detail="the sender stopped mid-send")
            )
        if left.rowcount:  # type: ignore[attr-defined]
            log.warning("broadcast.unconfirmed", broadcast=broadcast_id, rows=left.rowcount)  # type: ignore[attr-defined]
        message = f"{author.name}: {row.text}"
        progress = Progress(self.core, self.telegram, row, author.language)
        await progress.start()
        while time.monotonic() < deadline:
            rows = await self._pending(broadcast_id)
            if not rows:
                break
            sms = [r for r in rows if r.via == SMS or self.telegram is None]
            chats = [r for r in rows if r.via == TELEGRAM and self.telegram is not None]
            await asyncio.gather(
                self._send_sms(sms, message, deadline),
                self._send_telegram(chats, message, deadline, progress),
            )
            await progress.tick()
        else:
            await progress.tick(force=True)
            return False
        await self._finish(row, author, progress)
        return True

    async def _pending(self, broadcast_id: int) -> list[_Row]:
        async with self.core.sessions() as session:
            rows = await session.execute(
                select(
                    recipient_t.c.id,
                    recipient_t.c.party_id,
                    recipient_t.c.via,
                    recipient_t.c.recipient,
                    recipient_t.c.attempts,
                    party_t.c.msisdn,
                )
                .join(party_t, party_t.c.id == recipient_t.c.party_id)
                .where(
                    recipient_t.c.broadcast_id == broadcast_id,
                    recipient_t.c.state == RecipientState.PENDING,
                )
                .order_by(recipient_t.c.id)
                .limit(FETCH)
            )
            return [_Row(*r) for r in rows.all()]

    async def _claim(self, ids: Sequence[int]) -> set[int]:
        async with self.core.transaction() as session:
            return set((await session.execute(_CLAIM, {"ids": list(ids)})).scalars().all())

    async def _set(self, ids: Sequence[int], state: RecipientState, detail: str = "") -> None:
        if not ids:
            return
        values: dict[str, Any] = {"state": state}
        if state == RecipientState.SENT:
            values["sent_at"] = utcnow()
        if detail:
            values["detail"] = detail[:200]
        async with self.core.transaction() as session:
            await session.execute(_SET.values(**values), {"ids": list(ids)})

    async def _unsent(self, row: _Row, detail: str) -> None:
        """Not sent: back to pending, or failed after too many tries."""
        if row.attempts + 1 >= MAX_ATTEMPTS:
            await self._set([row.id], RecipientState.FAILED, detail)
        else:
            await self._set([row.id], RecipientState.PENDING, detail)

    async def _send_telegram(
        self, rows: list[_Row], text: str, deadline: float, progress: Progress
    ) -> None:
        assert self.telegram is not None or not rows
        todo: asyncio.Queue[_Row] = asyncio.Queue()
        for row in rows:
            todo.put_nowait(row)

        async def one_by_one() -> None:
            while time.monotonic() < deadline:
                try:
                    row = todo.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await self._send_one(row, text)
                await progress.tick()

        await asyncio.gather(*(one_by_one() for _ in range(self.concurrency)))

    async def _send_one(self, row: _Row, text: str) -> None:
        telegram = self.telegram
        assert telegram is not None
        if not await self._claim([row.id]):
            return  # someone else's (it cannot be, under the lease; but never twice)
        # Claimed first, then paced: the send follows its reserved moment without a database
        # write in between, so no jitter of ours pushes two sends into one of Telegram's seconds.
        if telegram.limiter is not None:
            await telegram.limiter.wait(row.recipient)
        try:
            await telegram.send(chat_id=row.recipient, text=text, paced=False)
        except Throttled as exc:
            await self._unsent(row, str(exc))
            return
        except RecipientBlocked as exc:
            await self._set([row.id], RecipientState.BLOCKED, str(exc))
            await mark_blocked(self.core, [row.party_id])
            return
        except ProviderRejected as exc:
            await self._set([row.id], RecipientState.FAILED, str(exc))
            return
        except ProviderUnavailable as exc:
            await self._unsent(row, str(exc))
            await asyncio.sleep(min(2**row.attempts, 30))
            return
        except OutcomeUnknown as exc:
            await self._set([row.id], RecipientState.UNCONFIRMED, str(exc))
            return
        await self._set([row.id], RecipientState.SENT)

    async def _send_sms(self, rows: list[_Row], text: str, deadline: float) -> None:
        for start in range(0, len(rows), SMS_BATCH):
            if time.monotonic() >= deadline:
                return
            batch = rows[start : start + SMS_BATCH]
            claimed = await self._claim([r.id for r in batch])
            mine = [r for r in batch if r.id in claimed]
            if not mine:
                continue
            try:
                receipts = await self.sms.send(to=[r.msisdn for r in mine], message=text)
            except ProviderRejected as exc:
                await self._set([r.id for r in mine], RecipientState.FAILED, str(exc))
                continue
            except ProviderUnavailable as exc:
                for row in mine:
                    await self._unsent(row, str(exc))
                await asyncio.sleep(min(2 ** mine[0].attempts, 30))
                continue
            except OutcomeUnknown as exc:
                await self._set([r.id for r in mine], RecipientState.UNCONFIRMED, str(exc))
                continue
            accepted = {r.number for r in receipts if r.accepted}
            await self._set([r.id for r in mine if r.msisdn in accepted], RecipientState.SENT)
            refused = [r.id for r in mine if r.msisdn not in accepted]
            await self._set(refused, RecipientState.FAILED, "refused by the SMS gateway")

    async def _finish(self, row: Broadcast, author: Party, progress: Progress) -> None:
        async with self.core.transaction() as session:
            moved = await session.execute(
                update(broadcast_t)
                .where(
                    and_(broadcast_t.c.id == row.id, broadcast_t.c.state == BroadcastState.SENDING)
                )
                .values(state=BroadcastState.DONE, finished_at=utcnow())
            )
        if not moved.rowcount:  # type: ignore[attr-defined]
            return
        final = await report(self.core, row.id or 0)
        log.info(
            "broadcast.done",
            broadcast=row.id,
            sent=final.sent,
            failed=final.failed,
            blocked=final.blocked,
            unconfirmed=final.unconfirmed,
        )
        if not await progress.show(final):
            text = describe(author.language, final)
            with contextlib.suppress(ProviderUnavailable, ProviderRejected, OutcomeUnknown):
                await self.sms.send(to=[author.msisdn], message=text)


async def open_broadcasts(core: Core) -> list[int]:
    """Broadcasts still being sent (the sweeper re-enqueues those whose lease has lapsed)."""
    async with core.sessions() as session:
        rows = await session.execute(
            select(broadcast_t.c.id).where(broadcast_t.c.state == BroadcastState.SENDING)
        )
        return [int(i) for i in rows.scalars().all()]


async def leased(redis: aioredis.Redis, broadcast_id: int) -> bool:
    return bool(await redis.exists(f"{LEASE_PREFIX}{broadcast_id}"))
