"""The worker's back-office round: overdue support cases to the platform, and once a day (after
``reconcile_hour``, local) yesterday's reconciliation with the aggregator.

Invariant: one reconciliation per aggregator account and day, however many workers run. A
worker takes a lease in Redis (``SET NX`` with a time-to-live it renews while it works) before it
starts; the day's key then says ``done`` for a week. A worker that dies mid-run lets its lease
lapse and another one runs the day again, which is safe: reconciling twice changes nothing.
The run is a task of its own, not the cron job, so it is bounded by nothing but its lease.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from core.context import Core
from core.logging import get_logger
from core.providers.port import AirtimeProvider
from core.services.case_intake import escalate_overdue
from core.services.cases import Outbox
from core.services.reconcile import reconcile

log = get_logger(__name__)

LEASE_S = 120  # a lease lapses this long after its holder stopped renewing it
RENEW_S = 30
DONE_S = 8 * 86_400  # a done day is remembered a week and a day


def lease_key(provider: str, day: str) -> str:
    return f"airgate:reconcile:{provider}:{day}"


class BackOffice:
    """The round of one worker process; every aggregator account of its core is reconciled."""

    def __init__(self, *, core: Core, redis: Redis, outbox: Outbox) -> None:
        self.core = core
        self.redis = redis
        self.outbox = outbox
        self.running: dict[str, asyncio.Task[None]] = {}  # by account

    async def tick(self, now: datetime | None = None) -> int:
        """One round; how many accounts' reconciliations it started."""
        await escalate_overdue(self.core, outbox=self.outbox)
        zone = ZoneInfo(self.core.settings.timezone)
        local = (now or datetime.now(zone)).astimezone(zone)
        if local.hour < self.core.settings.reconcile_hour:
            return 0
        day = (local - timedelta(days=1)).date().isoformat()
        started = 0
        for account, adapter in self.core.providers.items():
            if (task := self.running.get(account)) is not None and not task.done():
                continue
            key, token = lease_key(account, day), secrets.token_hex(8)
            if not await self.redis.set(key, token, nx=True, ex=LEASE_S):
                continue  # done, or another worker holds it
            self.running[account] = asyncio.create_task(
                self._run(key, token, day, account, adapter)
            )
            started += 1
        return started

    async def _run(
        self, key: str, token: str, day: str, account: str, adapter: AirtimeProvider
    ) -> None:
        renew = asyncio.create_task(self._renew(key, token))
        try:
            report = await reconcile(
                self.core,
                adapter,
                day=datetime.fromisoformat(day).date(),
                outbox=self.outbox,
                account=account,
            )
        except Exception as exc:  # noqa: BLE001 - let the lease lapse; the next round retries
            log.error("reconcile.failed", account=account, day=day, error=type(exc).__name__)
            await self.redis.delete(key)
            return
        finally:
            renew.cancel()
        await self.redis.set(key, "done", ex=DONE_S)
        log.info("reconcile.daily", account=account, day=day, at_stake_minor=report.at_stake_minor)

    async def _renew(self, key: str, token: str) -> None:
        while True:
            await asyncio.sleep(RENEW_S)
            if (await self.redis.get(key)) != token.encode():
                return  # lost it (Redis restarted): the run goes on, safe to run twice
            await self.redis.expire(key, LEASE_S)

    async def close(self) -> None:
        for task in self.running.values():
            task.cancel()
        await asyncio.gather(*self.running.values(), return_exceptions=True)
