"""Double-entry postings with guarded balances, idempotency and two-phase reservations.

Invariants this module keeps (``airgate ledger verify`` checks them from the outside):

* a transfer is immutable and posted at most once per idempotency key;
* an account's stored balance changes only in the transaction that inserts its transfers, by an
  UPDATE whose WHERE clause carries the guard (``balance + delta >= 0`` for non-system accounts):
  no read-then-write, so concurrent debits can never overdraw, on SQLite and PostgreSQL alike;
* a reservation resolves (capture or release) at most once.

How an operation runs, all inside the caller's transaction: its accounts are resolved (created
if new; ids cached once known to be committed, as accounts are never deleted), then the legs'
transfers are inserted with ``ON CONFLICT (idempotency_key) DO NOTHING RETURNING id`` -- a
concurrent duplicate waits on the unique index and then gets no row, so a replay is recognised
without aborting the transaction -- and then every balance delta is applied in one guarded UPDATE.
If it returns fewer rows than it targets, a guard failed: :class:`Overdraft` is raised and the
caller's transaction rolls back. It returns each balance as it left it, and the posting reports
every account's :class:`Move` (before, after): low-stock alerts fire on a crossing seen there
(core/services/alerts.py, docs/ALERTS.md).

On PostgreSQL, reserve, capture and release (the top-up hot path) run these steps as ONE prepared
statement of data-modifying CTEs (``core/ledger/pg_fast.py``, chosen by ``core/ledger/ledger.py``):
the same keys, guards, lock order and errors, inside the caller's transaction; there each
account's delta is applied by its own guarded single-row UPDATE, lower id first, instead of one
UPDATE for all. SQLite, and every other operation, use the statements here (:class:`GenericLedger`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import case, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from core.errors import IdempotencyConflict, NotFound, ReservationResolved
from core.ledger.postings import (
    MAX_LEGS,
    AccountRef,
    Leg,
    Move,
    Overdraft,
    Posting,
    by_kind,
    checked_legs,
    leg_keys,
    reserve_leg,
    resolution_leg,
)
from core.models import Account, Reservation, ReservationStatus, Transfer
from core.models.types import utcnow

account_t = Account.__table__  # type: ignore[attr-defined]
transfer_t = Transfer.__table__  # type: ignore[attr-defined]
reservation_t = Reservation.__table__  # type: ignore[attr-defined]


class GenericLedger:
    """Posts operations with statements every database runs. One instance per process: it caches
    account ids."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._dialect = engine.dialect.name
        self._ids: dict[str, int] = {}

    # -- accounts -------------------------------------------------------------------------------

    async def resolve(
        self, session: AsyncSession, refs: Iterable[AccountRef]
    ) -> dict[AccountRef, int]:
        """Ids of ``refs``, creating missing accounts inside the caller's transaction.

        Only ids of accounts that already existed are cached: one this transaction inserts could
        still roll back, so it is looked up again next time.
        """
        refs = list(refs)
        pending: dict[str, int] = session.info.setdefault("new_accounts", {})
        unknown = {r.code: r for r in refs if r.code not in self._ids and r.code not in pending}
        for ref in unknown.values():
            created = (
                await session.execute(
                    self._insert(account_t)
                    .values(
                        code=ref.code,
                        party_id=ref.party_id,
                        asset=ref.asset,
                        kind=ref.kind,
                        is_system=ref.is_system,
                        balance_minor=0,
                    )
                    .on_conflict_do_nothing(index_elements=["code"])
                    .returning(account_t.c.id)
                )
            ).scalar()
            if created is not None:
                pending[ref.code] = created
                continue
            existing = (
                await session.execute(select(account_t.c.id).where(account_t.c.code == ref.code))
            ).scalar_one()
            self._ids[ref.code] = existing
        return {r: self._ids.get(r.code) or pending[r.code] for r in refs}

    def _insert(self, table: Any) -> Any:
        module = postgresql if self._dialect == "postgresql" else sqlite
        return module.insert(table)

    # -- posting --------------------------------------------------------------------------------

    async def post(self, session: AsyncSession, *, op_key: str, legs: Sequence[Leg]) -> Posting:
        """Post ``legs`` atomically inside the caller's transaction (see the module docstring)."""
        legs = checked_legs(op_key, legs)
        ids = await self.resolve(session, [r for leg in legs for r in (leg.debit, leg.credit)])
        now = utcnow()
        posted: list[int] = []
        for key, leg in zip(leg_keys(op_key, len(legs)), legs, strict=True):
            stmt = (
                self._insert(transfer_t)
                .values(
                    idempotency_key=key,
                    kind=leg.kind,
                    asset=leg.debit.asset,
                    debit_account_id=ids[leg.debit],
                    credit_account_id=ids[leg.credit],
                    amount_minor=leg.amount_minor,
                    reference=leg.reference,
                    memo=leg.memo,
                    created_at=now,
                )
                .on_conflict_do_nothing(index_elements=["idempotency_key"])
                .returning(transfer_t.c.id)
            )
            new_id = (await session.execute(stmt)).scalar()
            if new_id is None:
                if posted:  # the first leg was new and a later one is not: keys were reused
                    raise IdempotencyConflict(key=op_key)
                return await self.replay(session, op_key=op_key, anchor=legs[0], ids=ids)
            posted.append(new_id)
        moves = await self._apply(session, legs=legs, ids=ids)
        return Posting(
            transfer_ids=tuple(posted),
            replayed=False,
            by_kind=by_kind((leg.kind, leg.amount_minor) for leg in legs),
            moves=moves,
        )

    async def _apply(
        self, session: AsyncSession, *, legs: Sequence[Leg], ids: dict[AccountRef, int]
    ) -> dict[AccountRef, Move]:
        deltas: dict[AccountRef, int] = defaultdict(int)
        for leg in legs:
            deltas[leg.debit] -= leg.amount_minor
            deltas[leg.credit] += leg.amount_minor
        moving = {ref: d for ref, d in deltas.items() if d}
        if not moving:
            return {}
        by_id = {ids[ref]: d for ref, d in moving.items()}
        delta = case(by_id, value=account_t.c.id)
        targets = account_t.c.id.in_(sorted(by_id))
        if self._dialect == "postgresql":
            # Lock the rows in id order first: an UPDATE alone locks in scan order, which differs
            # between transactions and deadlocks. NO KEY UPDATE does not conflict with the key-share
            # locks that inserting a transfer (foreign keys to both accounts) takes.
            locked = (
                select(account_t.c.id)
                .where(targets)
                .order_by(account_t.c.id)
                .with_for_update(key_share=True)  # renders FOR NO KEY UPDATE
                .subquery()
            )
            targets = account_t.c.id == locked.c.id
        stmt = (
            update(account_t)
            .where(targets)
            .where(or_(account_t.c.is_system, account_t.c.balance_minor + delta >= 0))
            .values(balance_minor=account_t.c.balance_minor + delta)
            .returning(account_t.c.id, account_t.c.balance_minor)
        )
        updated: dict[int, int] = dict((await session.execute(stmt)).all())
        if len(updated) != len(by_id):
            refused = next(ref for ref in moving if ids[ref] not in updated)
            await self._raise_overdraft(session, refused, needed=-moving[refused], ids=ids)
        return {ref: Move(updated[ids[ref]] - d, updated[ids[ref]]) for ref, d in moving.items()}

    async def _raise_overdraft(
        self, session: AsyncSession, ref: AccountRef, *, needed: int, ids: dict[AccountRef, int]
    ) -> None:
        """``ref``'s guard refused the debit, so its row is unchanged: read what it has."""
        available = (
            await session.execute(
                select(account_t.c.balance_minor).where(account_t.c.id == ids[ref])
            )
        ).scalar_one()
        raise Overdraft(ref, available, needed)

    async def replay(
        self, session: AsyncSession, *, op_key: str, anchor: Leg, ids: dict[AccountRef, int]
    ) -> Posting:
        """The key was posted before: the same request if its first leg matches, else a conflict."""
        rows = (
            (
                await session.execute(
                    select(transfer_t).where(
                        transfer_t.c.idempotency_key.in_(leg_keys(op_key, MAX_LEGS))
                    )
                )
            )
            .mappings()
            .all()
        )
        first = next(row for row in rows if row["idempotency_key"] == op_key)
        stored = (first["debit_account_id"], first["credit_account_id"], first["amount_minor"])
        if stored != (ids[anchor.debit], ids[anchor.credit], anchor.amount_minor):
            raise IdempotencyConflict(key=op_key)
        return Posting(
            transfer_ids=tuple(sorted(int(row["id"]) for row in rows)),
            replayed=True,
            by_kind=by_kind((row["kind"], int(row["amount_minor"])) for row in rows),
        )

    # -- two-phase reservations -----------------------------------------------------------------

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
        leg = reserve_leg(reservation_id, party_id, asset, amount_minor)
        posting = await self.post(session, op_key=f"reserve:{reservation_id}", legs=[leg])
        if not posting.replayed:
            await session.execute(
                reservation_t.insert().values(
                    id=reservation_id,
                    party_id=party_id,
                    asset=asset,
                    amount_minor=amount_minor,
                    status=ReservationStatus.RESERVED,
                    created_at=utcnow(),
                )
            )
        return posting

    async def capture(self, session: AsyncSession, *, reservation_id: str) -> Posting:
        """The top-up was delivered: inflight → sold."""
        return await self._resolve(session, reservation_id, ReservationStatus.CAPTURED)

    async def release(self, session: AsyncSession, *, reservation_id: str) -> Posting:
        """The top-up definitively failed: inflight → back to the party's main account."""
        return await self._resolve(session, reservation_id, ReservationStatus.RELEASED)

    async def _resolve(
        self, session: AsyncSession, reservation_id: str, outcome: ReservationStatus
    ) -> Posting:
        row = (
            await session.execute(
                update(reservation_t)
                .where(reservation_t.c.id == reservation_id)
                .where(reservation_t.c.status == ReservationStatus.RESERVED)
                .values(status=outcome, resolved_at=utcnow())
                .returning(
                    reservation_t.c.party_id, reservation_t.c.asset, reservation_t.c.amount_minor
                )
            )
        ).first()
        if row is None:
            return await self.already_resolved(session, reservation_id, outcome)
        leg = resolution_leg(reservation_id, outcome, *row)
        return await self.post(session, op_key=f"{leg.kind}:{reservation_id}", legs=[leg])

    async def already_resolved(
        self, session: AsyncSession, reservation_id: str, outcome: ReservationStatus
    ) -> Posting:
        """The reservation was not ``reserved``: a replay if it has ``outcome``, else an error."""
        status = (
            await session.execute(
                select(reservation_t.c.status).where(reservation_t.c.id == reservation_id)
            )
        ).scalar()
        if status is None:
            raise NotFound(kind="reservation", key=reservation_id)
        if status != outcome:
            raise ReservationResolved(reservation_id=reservation_id, status=status)
        return Posting(transfer_ids=(), replayed=True, by_kind={})


async def account_balances(session: AsyncSession, party_id: int) -> dict[tuple[str, str], int]:
    """``{(asset, kind): balance_minor}`` of one party's accounts."""
    rows = await session.execute(
        select(account_t.c.asset, account_t.c.kind, account_t.c.balance_minor).where(
            account_t.c.party_id == party_id
        )
    )
    return {(asset, kind): bal for asset, kind, bal in rows}
