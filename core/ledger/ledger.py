"""The ledger a process uses: the generic statements, and PostgreSQL's fast path where it applies.

:class:`Ledger` is :class:`~core.ledger.generic.GenericLedger` (accounts, postings, reservations,
on every database); on PostgreSQL, reserve, capture and release go through
:class:`~core.ledger.pg_fast.PgFastPath` instead, one statement each, with the same invariants.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from core.ledger.generic import GenericLedger
from core.ledger.pg_fast import PgFastPath
from core.ledger.postings import Posting
from core.models import ReservationStatus


class Ledger(GenericLedger):
    """Posts operations. One instance per process: it caches account ids."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self._pg = PgFastPath(self) if self._dialect == "postgresql" else None

    async def reserve(
        self,
        session: AsyncSession,
        *,
        reservation_id: str,
        party_id: int,
        asset: str,
        amount_minor: int,
    ) -> Posting:
        """Hold ``amount_minor`` of ``asset`` for a top-up (main → inflight); idempotent by id."""
        if self._pg is not None:
            return await self._pg.reserve(
                session,
                reservation_id=reservation_id,
                party_id=party_id,
                asset=asset,
                amount_minor=amount_minor,
            )
        return await super().reserve(
            session,
            reservation_id=reservation_id,
            party_id=party_id,
            asset=asset,
            amount_minor=amount_minor,
        )

    async def _resolve(
        self, session: AsyncSession, reservation_id: str, outcome: ReservationStatus
    ) -> Posting:
        if self._pg is not None:
            return await self._pg.resolve(session, reservation_id, outcome)
        return await super()._resolve(session, reservation_id, outcome)
