"""Notifications: the messages a top-up's outcome owes, kept as an outbox and sent after commit.

Invariant: an owed message is a ``notification`` row written in the transaction that made it owed
(unique ``key``), so a crash after the commit loses nothing; the sweeper sends what is still
pending. Delivery to a person is at least once: a crash between the gateway's acceptance and our
``sent`` mark sends it again (neither SMS nor Telegram has an idempotency key). While the worker
runs, "sent" marks are written in batches every ``MARK_EVERY_S``, which widens that window a little
and saves a transaction per message.

The retailer hears on Telegram when linked and the bot is configured, otherwise by SMS; the
customer's receipt is always an SMS. How a notice goes is its :class:`Via` (not "channel": a
channel is where a conversation or a top-up came from, core/conversation/channel.py), and so
is the column that keeps it (``notification.via``, ``broadcast_recipient.via``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Core
from core.errors import (
    OutcomeUnknown,
    ProviderRejected,
    ProviderUnavailable,
    RecipientBlocked,
    StoreUnavailable,
)
from core.logging import get_logger
from core.models import Notification, NotificationState, Party
from core.models.types import utcnow
from core.providers.port import SmsSender
from core.providers.telegram import TelegramSender
from core.services import identities
from core.stores import database_down

log = get_logger(__name__)
notification_t = Notification.__table__  # type: ignore[attr-defined]
party_t = Party.__table__  # type: ignore[attr-defined]


class Via(StrEnum):
    """How a notice goes."""

    SMS = "sms"
    TELEGRAM = "telegram"


SMS, TELEGRAM = Via.SMS, Via.TELEGRAM
MARK_EVERY_S = 0.2


@dataclass(slots=True)
class Message:
    """A notification row as the hot path handles it (no ORM object)."""

    key: str
    via: str  # a Via
    recipient: str
    text: str
    party_id: int | None = None
    id: int | None = None
    attempts: int = 0


def route(
    *, telegram_on: bool, telegram_user_id: int | str | None, msisdn: str, blocked: bool = False
) -> tuple[Via, str]:
    """(via, recipient) of a message to a party: Telegram when linked, on and not blocked by
    the user, else SMS."""
    if telegram_on and telegram_user_id is not None and not blocked:
        return TELEGRAM, str(telegram_user_id)
    return SMS, msisdn


async def mark_blocked(core: Core, party_ids: Sequence[int]) -> None:
    """These users blocked the bot: later messages to them go by SMS (until they write to it)."""
    await identities.mark_blocked(core, channel=TELEGRAM, party_ids=party_ids)


_INSERT = notification_t.insert().returning(notification_t.c.id, sort_by_parameter_order=True)
_MARK = update(notification_t).where(notification_t.c.id.in_(bindparam("ids", expanding=True)))
_PENDING = select(
    notification_t.c.key,
    notification_t.c.via,
    notification_t.c.recipient,
    notification_t.c.text,
    notification_t.c.party_id,
    notification_t.c.id,
    notification_t.c.attempts,
).where(
    notification_t.c.id.in_(bindparam("ids", expanding=True)),
    notification_t.c.state == NotificationState.PENDING,
)
_MSISDN = select(party_t.c.msisdn).where(party_t.c.id == bindparam("id"))


async def add_owed(session: AsyncSession, messages: Sequence[Message]) -> list[Message]:
    """Insert in the caller's transaction (which owes them exactly once: the unique key is the
    backstop); the messages come back with their ids."""
    if not messages:
        return []
    now = utcnow()
    params = [
        {
            "key": m.key,
            "party_id": m.party_id,
            "via": m.via,
            "recipient": m.recipient,
            "text": m.text[:480],
            "state": NotificationState.PENDING,
            "attempts": 0,
            "created_at": now,
        }
        for m in messages
    ]
    ids = (await session.execute(_INSERT, params)).scalars().all()
    for message, new_id in zip(messages, ids, strict=True):
        message.id = new_id
    return list(messages)


class Notifier:
    def __init__(self, *, core: Core, sms: SmsSender, telegram: TelegramSender | None) -> None:
        self.core = core
        self.sms = sms
        self.telegram = telegram
        self._sent: list[int] = []
        self._flusher: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    @property
    def telegram_on(self) -> bool:
        return self.telegram is not None

    def start(self) -> None:
        """Batch "sent" marks from now on (the worker); without it each is written at once."""
        self._flusher = asyncio.create_task(self._flush_every())

    async def close(self) -> None:
        """Stop the flusher by asking, not cancelling: a mark on its way finishes on its own
        connection (a write cancelled mid-statement leaves its transaction, and on SQLite the one
        write lock, to whoever cleans up after it), then what is left is written."""
        if self._flusher is not None:
            self._stop.set()
            await self._flusher
            self._flusher = None
        await self._flush()

    async def send_ids(self, ids: Sequence[int]) -> int:
        """Send the pending ones among ``ids`` (the sweeper's jobs); returns how many went."""
        async with self.core.sessions() as session:
            rows = (await session.execute(_PENDING, {"ids": list(ids)})).all()
        return await self.send([Message(*row) for row in rows])

    async def send(self, messages: Sequence[Message]) -> int:
        """Send ``messages`` (pending, with ids) at once; record what became of each."""
        vias = [m.via for m in messages]
        states = await asyncio.gather(*(self._send_one(m) for m in messages))
        for message, state, via in zip(messages, states, vias, strict=True):
            if state == NotificationState.SENT and message.via == via:
                self._sent.append(message.id or 0)
            else:
                await self._mark(
                    [message.id or 0],
                    state=state,
                    attempts=message.attempts + 1,
                    route=(message.via, message.recipient),
                )
        if self._flusher is None:
            await self._flush()
        return sum(state == NotificationState.SENT for state in states)

    async def _send_one(self, message: Message) -> NotificationState:
        try:
            if message.via == TELEGRAM and self.telegram is not None:
                try:
                    await self.telegram.send(chat_id=message.recipient, text=message.text)
                    return NotificationState.SENT
                except ProviderRejected as exc:
                    # Blocked the bot or unknown chat: the message still goes, by SMS.
                    log.info("notify.telegram_refused", notification=message.id, detail=str(exc))
                    if isinstance(exc, RecipientBlocked) and message.party_id is not None:
                        await mark_blocked(self.core, [message.party_id])
                    message.via, message.recipient = SMS, await self._msisdn_of(message)
            receipts = await self.sms.send(to=[message.recipient], message=message.text)
        except (ProviderUnavailable, OutcomeUnknown) as exc:  # at least once: sent again later
            log.info("notify.later", notification=message.id, detail=str(exc))
            return NotificationState.PENDING
        except ProviderRejected as exc:
            log.warning("notify.refused", notification=message.id, detail=str(exc))
            return NotificationState.FAILED
        ok = bool(receipts) and all(r.accepted for r in receipts)
        return NotificationState.SENT if ok else NotificationState.FAILED

    async def _msisdn_of(self, message: Message) -> str:
        if message.party_id is None:
            return message.recipient
        async with self.core.sessions() as session:
            msisdn = (await session.execute(_MSISDN, {"id": message.party_id})).scalar()
        return str(msisdn or message.recipient)

    async def _flush_every(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), MARK_EVERY_S)
            try:
                await self._flush()
            except Exception as exc:  # a database hiccup: keep the ids, try again next round
                away = exc if isinstance(exc, StoreUnavailable) else database_down(exc)
                if away is None:
                    log.exception("notify.mark_failed")
                else:  # an outage, not a bug: one line a round, not a traceback
                    log.warning("notify.mark_deferred", error=away.fields["detail"])

    async def _flush(self) -> None:
        if not self._sent:
            return
        ids, self._sent = self._sent, []
        try:
            await self._mark(ids, state=NotificationState.SENT)
        except BaseException:
            self._sent.extend(ids)
            raise

    async def _mark(
        self,
        ids: Sequence[int],
        *,
        state: NotificationState,
        attempts: int | None = None,
        route: tuple[str, str] | None = None,
    ) -> None:
        values: dict[str, object] = {"state": state}
        if state == NotificationState.SENT:
            values["sent_at"] = utcnow()
        if attempts is not None:
            values["attempts"] = attempts
        if route is not None:  # a Telegram message that fell back to SMS
            values["via"], values["recipient"] = route
        async with self.core.transaction() as session:
            await session.execute(_MARK.values(**values), {"ids": list(ids)})
