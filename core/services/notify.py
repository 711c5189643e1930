"""Notifications: the messages a top-up's outcome owes, kept as an outbox and sent after commit.

Invariant: an owed message is a ``notification`` row written in the transaction that made it owed
(unique ``key``), so a crash after the commit loses nothing; the sweeper sends what is still
pending. Delivery to a person is at least once: a crash between the gateway's acceptance and our
``sent`` mark sends it again (neither SMS nor Telegram has an idempotency key).

The retailer hears on Telegram when linked and the bot is configured, otherwise by SMS; the
customer's receipt is always an SMS.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.context import Core
from core.errors import ProviderRejected, ProviderUnavailable
from core.logging import get_logger
from core.models import Notification, NotificationState, Party
from core.models.types import utcnow
from core.providers.port import SmsSender
from core.providers.telegram import TelegramSender

log = get_logger(__name__)
notification_t = Notification.__table__  # type: ignore[attr-defined]

SMS, TELEGRAM = "sms", "telegram"


def route(
    *, telegram_on: bool, telegram_user_id: int | None, msisdn: str
) -> tuple[str, str]:
    """(channel, recipient) of a message to a party: Telegram when linked and on, else SMS."""
    if telegram_on and telegram_user_id is not None:
        return TELEGRAM, str(telegram_user_id)
    return SMS, msisdn


_INSERT = notification_t.insert().returning(notification_t.c.id, sort_by_parameter_order=True)
_MARK = update(notification_t).where(notification_t.c.id.in_(bindparam("ids", expanding=True)))
_PENDING = select(Notification).where(
    col(Notification.id).in_(bindparam("ids", expanding=True)),
    col(Notification.state) == NotificationState.PENDING,
)


async def add_owed(session: AsyncSession, rows: Sequence[Notification]) -> list[Notification]:
    """Insert in the caller's transaction (which owes them exactly once: the unique key is the
    backstop); the rows come back with their ids."""
    params = [row.model_dump(exclude={"id"}) for row in rows]
    ids = (await session.execute(_INSERT, params)).scalars().all()
    for row, new_id in zip(rows, ids, strict=True):
        row.id = new_id
    return list(rows)


class Notifier:
    def __init__(self, *, core: Core, sms: SmsSender, telegram: TelegramSender | None) -> None:
        self.core = core
        self.sms = sms
        self.telegram = telegram

    @property
    def telegram_on(self) -> bool:
        return self.telegram is not None

    async def send_ids(self, ids: Sequence[int]) -> int:
        """Send the pending ones among ``ids`` (the sweeper's jobs); returns how many went."""
        async with self.core.sessions() as session:
            rows = list((await session.execute(_PENDING, {"ids": list(ids)})).scalars())
        return await self.send(rows)

    async def send(self, rows: Sequence[Notification]) -> int:
        """Send ``rows`` (pending, with ids) at once; record what became of each."""
        channels = [row.channel for row in rows]
        states = await asyncio.gather(*(self._send_one(row) for row in rows))
        sent = [
            row.id or 0
            for row, state, channel in zip(rows, states, channels, strict=True)
            if state == NotificationState.SENT and row.channel == channel
        ]
        if sent:
            await self._mark(sent, state=NotificationState.SENT)
        for row, state, channel in zip(rows, states, channels, strict=True):
            if state != NotificationState.SENT or row.channel != channel:
                await self._mark(
                    [row.id or 0],
                    state=state,
                    attempts=row.attempts + 1,
                    route=(row.channel, row.recipient),
                )
        return sum(state == NotificationState.SENT for state in states)

    async def _send_one(self, row: Notification) -> NotificationState:
        try:
            if row.channel == TELEGRAM and self.telegram is not None:
                try:
                    await self.telegram.send(chat_id=row.recipient, text=row.text)
                    return NotificationState.SENT
                except ProviderRejected as exc:
                    # Blocked the bot or unknown chat: the message still goes, by SMS.
                    log.info("notify.telegram_refused", notification=row.id, detail=str(exc))
                    row.channel, row.recipient = SMS, await self._msisdn_of(row)
            receipts = await self.sms.send(to=[row.recipient], message=row.text)
        except ProviderUnavailable as exc:
            log.info("notify.later", notification=row.id, detail=str(exc))
            return NotificationState.PENDING
        except ProviderRejected as exc:
            log.warning("notify.refused", notification=row.id, detail=str(exc))
            return NotificationState.FAILED
        ok = bool(receipts) and all(r.accepted for r in receipts)
        return NotificationState.SENT if ok else NotificationState.FAILED

    async def _msisdn_of(self, row: Notification) -> str:
        async with self.core.sessions() as session:
            party = await session.get(Party, row.party_id) if row.party_id else None
        return party.msisdn if party is not None else row.recipient

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
            values["channel"], values["recipient"] = route
        async with self.core.transaction() as session:
            await session.execute(_MARK.values(**values), {"ids": list(ids)})

