"""Broadcasts: a distributor's message to an audience of its retailers, sent by the worker.

Invariants (see core/models/broadcast.py for the tables):
- The audience is resolved and every recipient row written when the broadcast is confirmed, in one
  transaction keyed by the confirming turn: a retried confirmation finds the same broadcast.
- At most once per recipient: a row is claimed (``pending → sending``, committed) before its message
  goes out, and only one sender works on a broadcast at a time (a Redis lease, renewed while it
  runs). A sender that takes over a dead one's broadcast marks what it left in ``sending`` as
  ``unconfirmed``, never sends it again. A 429, a refused connection or a 5xx means "not sent": the
  row goes back to ``pending`` and is retried; a time-out means "maybe sent": ``unconfirmed``.
- Telegram sends go through the shared :class:`~core.ratelimit.Limiter` (the bot's rate, one a
  second per chat, 429 ``retry_after`` honoured by every sender); retailers without Telegram, or
  who blocked the bot, get an SMS (in batches: one gateway call per batch).
- A sender works for a time budget, then the job enqueues the next part; the sweeper re-enqueues
  a broadcast still ``sending`` whose lease has lapsed (its worker died).
- Progress is edited into one message in the distributor's chat every few seconds; the final report
  (delivered, failed, blocked the bot, unconfirmed) is written once, by whoever moves the broadcast
  to ``done`` (a conditional UPDATE).
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
from sqlalchemy import Select, and_, bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.context import Core
from core.errors import (
    NotFound,
    NotPermitted,
    OutcomeUnknown,
    ProviderRejected,
    ProviderUnavailable,
    RecipientBlocked,
    Throttled,
)
from core.i18n import t
from core.logging import get_logger
from core.models import (
    Account,
    AccountKind,
    Broadcast,
    BroadcastRecipient,
    BroadcastState,
    Party,
    PartyStatus,
    PartyTag,
    RecipientState,
    Role,
)
from core.models.types import utcnow
from core.providers.port import SmsSender
from core.providers.telegram import TelegramSender
from core.services import identities
from core.services.audit import Actor, record
from core.services.notify import SMS, TELEGRAM, mark_blocked, route

log = get_logger(__name__)

party_t = Party.__table__  # type: ignore[attr-defined]
account_t = Account.__table__  # type: ignore[attr-defined]
tag_t = PartyTag.__table__  # type: ignore[attr-defined]
broadcast_t = Broadcast.__table__  # type: ignore[attr-defined]
recipient_t = BroadcastRecipient.__table__  # type: ignore[attr-defined]

MAX_TEXT = 300  # fits an SMS pair with the sender's name in front, and a USSD preview's excerpt
LEASE_PREFIX = "airgate:bc:lease:"
LEASE_S = 10.0  # a sender renews its lease every LEASE_S / 3; a dead one's lapses after this
PROGRESS_EVERY_S = 3.0
SMS_BATCH = 100
FETCH = 500  # pending rows read per round
MAX_ATTEMPTS = 5  # "not sent" answers before a recipient is given up as failed


# -- the audience --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Audience:
    """Who a broadcast goes to: ``all`` the distributor's retailers, those ``low`` on an
    operator's stock (``value`` the operator code), or those with a ``tag`` or region."""

    kind: str
    value: str = ""

    @classmethod
    def parse(cls, text: str) -> Audience:
        kind, _, value = text.partition(":")
        if kind not in ("all", "low", "tag") or (kind != "all" and not value):
            raise ValueError(f"not an audience: {text!r}")
        return cls(kind, value.strip().lower() if kind == "tag" else value)

    def __str__(self) -> str:
        return self.kind if self.kind == "all" else f"{self.kind}:{self.value}"


@dataclass(frozen=True, slots=True)
class Preview:
    total: int
    telegram: int
    sms: int


def _audience_query(core: Core, distributor_id: int, audience: Audience) -> Select[Any]:
    query = select(party_t.c.id, party_t.c.msisdn, identities.address_column(TELEGRAM)).where(
        party_t.c.parent_id == distributor_id,
        party_t.c.role == Role.RETAILER,
        party_t.c.status == PartyStatus.ACTIVE,
    )
    if audience.kind == "low":
        threshold = func.coalesce(party_t.c.low_stock_minor, core.settings.low_stock_minor)
        low = (
            select(account_t.c.id)
            .where(
                account_t.c.party_id == party_t.c.id,
                account_t.c.kind == AccountKind.MAIN,
                account_t.c.asset == f"AIRTIME:{audience.value}",
                account_t.c.balance_minor < threshold,
            )
            .exists()
        )
        query = query.where(low)
    elif audience.kind == "tag":
        tagged = select(tag_t.c.party_id).where(
            tag_t.c.party_id == party_t.c.id, tag_t.c.tag == audience.value
        )
        query = query.where(or_(func.lower(party_t.c.region) == audience.value, tagged.exists()))
    return query.order_by(party_t.c.id)


async def _recipients(core: Core, distributor_id: int, audience: Audience) -> list[dict[str, Any]]:
    telegram_on = bool(core.settings.telegram_token)
    async with core.sessions() as session:
        rows = (await session.execute(_audience_query(core, distributor_id, audience))).all()
    out = []
    for party_id, msisdn, telegram_address in rows:
        channel, recipient = route(
            telegram_on=telegram_on, telegram_user_id=telegram_address, msisdn=msisdn
        )
        out.append({"party_id": party_id, "channel": channel, "recipient": recipient})
    return out


def _preview(recipients: Sequence[dict[str, Any]]) -> Preview:
    telegram = sum(r["channel"] == TELEGRAM for r in recipients)
    return Preview(len(recipients), telegram, len(recipients) - telegram)


async def preview(core: Core, *, distributor_id: int, audience: Audience) -> Preview:
    return _preview(await _recipients(core, distributor_id, audience))


# -- confirming ----------------------------------------------------------------------------------


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
    recipients = await _recipients(core, distributor_id, audience)
    if not recipients:
        raise NotFound(kind="recipient", key=str(audience))
    async with core.sessions() as session:
        found = await _by_key(session, key)
    if found is not None:
        return found
    async with core.sessions() as session:
        distributor = await session.get(Party, distributor_id)
        chat = await identities.address(session, party_id=distributor_id, channel=TELEGRAM)
    if distributor is None or distributor.role != Role.DISTRIBUTOR:
        raise NotPermitted(reason="only a distributor broadcasts")
    try:
        async with core.transaction() as session:
            row = Broadcast(
                party_id=distributor_id,
                key=key,
                text=text,
                audience=str(audience),
                total=len(recipients),
                progress_chat_id=int(chat) if core.settings.telegram_token and chat else None,
            )
            session.add(row)
            await session.flush()
            assert row.id is not None
            await session.execute(
                recipient_t.insert(),
                [
                    {**r, "broadcast_id": row.id, "state": RecipientState.PENDING}
                    for r in recipients
                ],
            )
            await record(
                session,
                actor=actor,
                action="broadcast.create",
                reference=f"broadcast:{row.id}",
                details={"audience": str(audience), "recipients": len(recipients)},
            )
            created = Created(row.id, _preview(recipients), new=True)
    except IntegrityError:  # the same confirmation, concurrently: the other one wrote it
        async with core.sessions() as session:
            found = await _by_key(session, key)
        if found is None:
            raise
        return found
    log.info("broadcast.created", broadcast=created.id, recipients=len(recipients))
    return created


async def _by_key(session: AsyncSession, key: str) -> Created | None:
    row = (await session.execute(select(Broadcast).where(col(Broadcast.key) == key))).scalar()
    if row is None or row.id is None:
        return None
    counts = await _counts_by_channel(session, row.id)
    return Created(row.id, Preview(row.total, counts.get(TELEGRAM, 0), counts.get(SMS, 0)), False)


async def _counts_by_channel(session: AsyncSession, broadcast_id: int) -> dict[str, int]:
    rows = await session.execute(
        select(recipient_t.c.channel, func.count())
        .where(recipient_t.c.broadcast_id == broadcast_id)
        .group_by(recipient_t.c.channel)
    )
    return {channel: int(n) for channel, n in rows.all()}


# -- the report ----------------------------------------------------------------------------------


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


# -- sending -------------------------------------------------------------------------------------

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
    channel: str
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
        if not await self.redis.set(lease, token, nx=True, px=int(LEASE_S * 1000)):
            log.info("broadcast.busy", broadcast=broadcast_id)
            return True
        renewer = asyncio.create_task(self._renew(lease, token))
        try:
            return await self._run(broadcast_id, time.monotonic() + budget_s)
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
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
        progress = _Progress(self, row, author.language)
        await progress.start()
        while time.monotonic() < deadline:
            rows = await self._pending(broadcast_id)
            if not rows:
                break
            sms = [r for r in rows if r.channel == SMS or self.telegram is None]
            chats = [r for r in rows if r.channel == TELEGRAM and self.telegram is not None]
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
                    recipient_t.c.channel,
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
        self, rows: list[_Row], text: str, deadline: float, progress: _Progress
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

    async def _finish(self, row: Broadcast, author: Party, progress: _Progress) -> None:
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


class _Progress:
    """The distributor's progress message: posted once, then edited in place."""

    def __init__(self, sender: Sender, row: Broadcast, lang: str) -> None:
        self.sender = sender
        self.row = row
        self.lang = lang
        self.last = 0.0

    @property
    def on(self) -> bool:
        return self.sender.telegram is not None and self.row.progress_chat_id is not None

    async def start(self) -> None:
        if not self.on or self.row.progress_message_id is not None:
            return
        assert self.sender.telegram is not None and self.row.progress_chat_id is not None
        now = await report(self.sender.core, self.row.id or 0)
        try:
            message_id = await self.sender.telegram.send(
                chat_id=self.row.progress_chat_id, text=describe(self.lang, now)
            )
        except (ProviderUnavailable, ProviderRejected, OutcomeUnknown) as exc:
            log.info("broadcast.no_progress", broadcast=self.row.id, detail=str(exc))
            self.row.progress_chat_id = None
            return
        self.row.progress_message_id = message_id
        async with self.sender.core.transaction() as session:
            await session.execute(
                update(broadcast_t)
                .where(broadcast_t.c.id == self.row.id)
                .values(progress_message_id=message_id)
            )
        self.last = time.monotonic()

    async def tick(self, *, force: bool = False) -> None:
        if not self.on or (not force and time.monotonic() - self.last < PROGRESS_EVERY_S):
            return
        self.last = time.monotonic()
        await self.show(await report(self.sender.core, self.row.id or 0))

    async def show(self, now: Report) -> bool:
        """Edit ``now`` into the progress message; False if there is none to edit."""
        telegram = self.sender.telegram
        if telegram is None or self.row.progress_chat_id is None:
            return False
        if self.row.progress_message_id is None:
            return False
        if telegram.limiter is not None:
            await telegram.limiter.wait(self.row.progress_chat_id)
        try:
            await telegram.edit(
                chat_id=self.row.progress_chat_id,
                message_id=self.row.progress_message_id,
                text=describe(self.lang, now),
            )
        except (ProviderUnavailable, ProviderRejected, OutcomeUnknown) as exc:
            log.info("broadcast.progress_failed", broadcast=self.row.id, detail=str(exc))
            return not now.done  # the final report then goes by SMS
        return True


async def open_broadcasts(core: Core) -> list[int]:
    """Broadcasts still being sent (the sweeper re-enqueues those whose lease has lapsed)."""
    async with core.sessions() as session:
        rows = await session.execute(
            select(broadcast_t.c.id).where(broadcast_t.c.state == BroadcastState.SENDING)
        )
        return [int(i) for i in rows.scalars().all()]


async def leased(redis: aioredis.Redis, broadcast_id: int) -> bool:
    return bool(await redis.exists(f"{LEASE_PREFIX}{broadcast_id}"))
