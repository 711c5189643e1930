"""Each morning, every active distributor gets yesterday's report: on Telegram a chart with the
summary as its caption, otherwise the summary by SMS.

Invariant: a (party, day) is sent at most once while workers live: a worker first claims it by
inserting its ``report_send`` row (the primary key admits one), sends, then marks it sent. A claim
left unsent this long (its worker died mid-send) may be taken again (``CLAIM_STALE_S``), so a crash
costs a late report, never a lost one; two workers, or a restart, never both send a fresh claim.
The worker's cron runs :func:`send_due` every minute; it does nothing before the local hour
``AIRGATE_DAILY_REPORT_HOUR`` and little once all are sent. A distributor whose day was quiet (no
top-up in its network, no stock bought or sold, no deposit) is sent nothing (``quiet``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from core.context import Core
from core.errors import ProviderError, ProviderRejected, RecipientBlocked
from core.logging import get_logger
from core.models import Party, PartyStatus, ReportSend, Role
from core.models.types import utcnow
from core.providers.port import SmsSender
from core.providers.telegram import MAX_CAPTION, TelegramSender
from core.services import identities
from core.services.daily import charts, render
from core.services.daily.detail import detail
from core.services.daily.figures import Detail
from core.services.notify import SMS, TELEGRAM, Via

log = get_logger(__name__)
party_t = Party.__table__  # type: ignore[attr-defined]
send_t = ReportSend.__table__  # type: ignore[attr-defined]

CLAIM_STALE_S = 600  # longer than any one send (a chart and one API call, each time-limited)
CLAIMED, SENT, FAILED, QUIET = "claimed", "sent", "failed", "quiet"


@dataclass(frozen=True, slots=True)
class Morning:
    core: Core
    sms: SmsSender
    telegram: TelegramSender | None

    async def send_due(self, *, now: datetime | None = None, budget_s: float = 20.0) -> int:
        """Send what is due now, for at most about ``budget_s``; how many were sent."""
        settings = self.core.settings
        local = (now or utcnow()).astimezone(ZoneInfo(settings.timezone))
        if local.hour < settings.daily_report_hour:
            return 0
        day = local.date() - timedelta(days=1)
        deadline = time.monotonic() + budget_s
        sent = 0
        for party_id in await self._due(day):
            if time.monotonic() > deadline:
                break  # the next minute's run goes on
            if await self._claim(party_id, day):
                sent += await self._send(party_id, day)
        return sent

    async def _due(self, day: date) -> list[int]:
        stale = utcnow() - timedelta(seconds=CLAIM_STALE_S)
        query = (
            select(party_t.c.id)
            .outerjoin(send_t, and_(send_t.c.party_id == party_t.c.id, send_t.c.day == day))
            .where(party_t.c.role == Role.DISTRIBUTOR, party_t.c.status == PartyStatus.ACTIVE)
            .where(
                or_(
                    send_t.c.party_id.is_(None),
                    and_(send_t.c.state == CLAIMED, send_t.c.claimed_at < stale),
                )
            )
            .order_by(party_t.c.id)
        )
        async with self.core.sessions() as session:
            return list((await session.execute(query)).scalars())

    async def _claim(self, party_id: int, day: date) -> bool:
        """This worker's turn to send (party, day): a new row, or a stale claim taken over."""
        now = utcnow()
        row = {"party_id": party_id, "day": day, "via": "", "state": CLAIMED, "claimed_at": now}
        try:
            async with self.core.transaction() as session:
                await session.execute(insert(send_t).values(**row))
            return True
        except IntegrityError:
            pass
        stale = now - timedelta(seconds=CLAIM_STALE_S)
        async with self.core.transaction() as session:
            taken = await session.execute(
                update(send_t)
                .where(send_t.c.party_id == party_id, send_t.c.day == day)
                .where(send_t.c.state == CLAIMED, send_t.c.claimed_at < stale)
                .values(claimed_at=now)
            )
        return bool(taken.rowcount)  # type: ignore[attr-defined]

    async def _send(self, party_id: int, day: date) -> int:
        report = await detail(self.core, day=day, party_id=party_id)
        if _quiet(report):  # nothing happened: no message, nothing left to do for the day
            await self._mark(party_id, day, QUIET, "")
            return 0
        async with self.core.sessions() as session:
            party = await session.get(Party, party_id)
            chat = (
                await identities.address(session, party_id=party_id, channel=TELEGRAM)
                if self.telegram is not None
                else None
            )
        language = party.language if party else "en"
        text = render.summary(report, language)
        via: Via = SMS
        try:
            if chat is not None and self.telegram is not None:
                try:
                    png = await asyncio.to_thread(charts.draw, report, language=language)
                    await self.telegram.send_photo(
                        chat_id=chat, photo=png, caption=text[:MAX_CAPTION],
                        filename=f"airgate-{day.isoformat()}.png",
                    )  # fmt: skip
                    via = TELEGRAM
                except RecipientBlocked:
                    await identities.mark_blocked(self.core, channel=TELEGRAM, party_ids=[party_id])
                    chat = None
            if chat is None:
                await self.sms.send(to=[report.party.msisdn], message=text)
        except ProviderRejected as exc:
            log.warning("report.refused", party_id=party_id, error=exc.code)
            await self._mark(party_id, day, FAILED, via)
            return 0
        except ProviderError as exc:  # not sent, or not known: the claim goes stale, then retried
            log.warning("report.not_sent", party_id=party_id, error=exc.code)
            return 0
        await self._mark(party_id, day, SENT, via)
        log.info("report.sent", party_id=party_id, day=day.isoformat(), via=via)
        return 1

    async def _mark(self, party_id: int, day: date, state: str, via: str) -> None:
        async with self.core.transaction() as session:
            await session.execute(
                update(send_t)
                .where(send_t.c.party_id == party_id, send_t.c.day == day)
                .values(state=state, via=via, sent_at=utcnow())
            )


def _quiet(report: Detail) -> bool:
    day = report.party
    moved = (day.delivered, day.failed, day.open, day.bought_face_minor, day.sold_face_minor,
             day.deposits_minor)  # fmt: skip
    return not any(moved)
