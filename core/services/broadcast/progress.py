"""The progress of a broadcast in the distributor's Telegram chat: one message, posted when sending
starts and edited in place every few seconds (at the bot's pace), ending with the final report."""

from __future__ import annotations

import time

from sqlalchemy import update

from core.context import Core
from core.errors import OutcomeUnknown, ProviderRejected, ProviderUnavailable
from core.logging import get_logger
from core.models import Broadcast
from core.providers.telegram import TelegramSender
from core.services.broadcast.report import Report, describe, report

log = get_logger(__name__)

broadcast_t = Broadcast.__table__  # type: ignore[attr-defined]

PROGRESS_EVERY_S = 3.0


class Progress:
    """The distributor's progress message: posted once, then edited in place."""

    def __init__(
        self, core: Core, telegram: TelegramSender | None, row: Broadcast, lang: str
    ) -> None:
        self.core = core
        self.telegram = telegram
        self.row = row
        self.lang = lang
        self.last = 0.0

    @property
    def on(self) -> bool:
        return self.telegram is not None and self.row.progress_chat_id is not None

    async def start(self) -> None:
        if not self.on or self.row.progress_message_id is not None:
            return
        assert self.telegram is not None and self.row.progress_chat_id is not None
        now = await report(self.core, self.row.id or 0)
        try:
            message_id = await self.telegram.send(
                chat_id=self.row.progress_chat_id, text=describe(self.lang, now)
            )
        except (ProviderUnavailable, ProviderRejected, OutcomeUnknown) as exc:
            log.info("broadcast.no_progress", broadcast=self.row.id, detail=str(exc))
            self.row.progress_chat_id = None
            return
        self.row.progress_message_id = message_id
        async with self.core.transaction() as session:
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
        await self.show(await report(self.core, self.row.id or 0))

    async def show(self, now: Report) -> bool:
        """Edit ``now`` into the progress message; False if there is none to edit."""
        telegram = self.telegram
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
