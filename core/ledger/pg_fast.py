"""PostgreSQL fast path of ``Ledger.reserve``, ``capture`` and ``release``: one statement each.

A top-up reserves and then captures or releases. On PostgreSQL each of those runs as ONE prepared
statement of data-modifying CTEs instead of three or four SQLAlchemy statements; SQL text is fixed
at import, so nothing is built per call, and the driver prepares it once per connection. It keeps
every invariant of ``core/ledger/generic.py`` (see its docstring and docs/LEDGER.md):

* ``t`` inserts the transfer with ``ON CONFLICT (idempotency_key) DO NOTHING RETURNING``; a
  concurrent duplicate waits on the unique index and gets no row, and then nothing else in the
  statement happens: the original is looked up in a new statement (a new snapshot, which sees it)
  by ``Ledger.replay``, exactly as the generic path does;
* ``lo`` and ``hi`` apply the deltas: one single-row UPDATE per account whose WHERE carries the
  guard, the lower account id first (``hi`` waits for ``lo``'s result), so rows are locked in id
  order as on the generic path. Unlike ``Ledger._apply``, no row is locked and then updated by the
  same statement: under load that pattern deadlocked against generic postings (which hold the
  transfer's foreign-key locks between statements) inside PostgreSQL's row-lock queue, see
  tests/integration/test_ledger_fastpath.py. Fewer than two rows updated means the debit was
  refused (the credit only grows): :class:`Overdraft` names the debited account with its balance,
  read under a row lock; the transfer inserted by ``t`` is still in the transaction, which the
  caller rolls back on the exception, as on the generic path. Both return the balance they leave,
  reported as the posting's ``moves`` (what low-stock alerts read: core/services/alerts.py);
* reserve inserts the reservation row only if both balances moved; capture and release first flip
  the reservation with ``UPDATE … WHERE status = 'reserved' RETURNING`` (one resolution wins) and
  find the accounts by code (they are not known before the reservation row is read).

Accounts: reserve needs both ids before it runs and gets them from ``Ledger.resolve`` (its cache,
else created in this transaction, as usual). Capture and release look the accounts up by code in
the statement; if one does not exist yet (a party's first capture has no ``sold`` account), the
statement flips the reservation and posts nothing, and the generic ``Ledger.post`` posts the leg.

Transactions: the statement runs on the session's own connection, inside the caller's
transaction, which stays the one unit of work (see ``_fetch``: BEGIN is lazy in SQLAlchemy).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from core.ledger.generic import GenericLedger
from core.ledger.postings import (
    AccountRef,
    Leg,
    Move,
    Overdraft,
    Posting,
    checked_legs,
    reserve_leg,
    resolution,
    resolution_leg,
)
from core.models import AccountKind, ReservationStatus
from core.models.types import utcnow

# Apply the two deltas of the one transfer ``t`` inserted (none if it inserted none): one guarded
# single-row UPDATE per account, the lower id first (``hi`` runs only once ``lo`` has succeeded).
_APPLY = """
k AS (
    SELECT LEAST(debit_account_id, credit_account_id) AS lo,
           GREATEST(debit_account_id, credit_account_id) AS hi,
           debit_account_id AS debit, amount_minor AS amount
    FROM t
), lo AS (
    UPDATE account a
    SET balance_minor = a.balance_minor + CASE WHEN a.id = k.debit THEN -k.amount ELSE k.amount END
    FROM k
    WHERE a.id = k.lo AND (a.is_system OR
        a.balance_minor + CASE WHEN a.id = k.debit THEN -k.amount ELSE k.amount END >= 0)
    RETURNING a.id, a.balance_minor
), hi AS (
    UPDATE account a
    SET balance_minor = a.balance_minor + CASE WHEN a.id = k.debit THEN -k.amount ELSE k.amount END
    FROM k
    WHERE a.id = k.hi AND EXISTS (SELECT FROM lo) AND (a.is_system OR
        a.balance_minor + CASE WHEN a.id = k.debit THEN -k.amount ELSE k.amount END >= 0)
    RETURNING a.id, a.balance_minor
)"""
# The two balances as ``lo`` and ``hi`` left them (NULL where nothing was updated).
_BALANCES = (
    "(SELECT balance_minor FROM lo) AS lo_balance, (SELECT balance_minor FROM hi) AS hi_balance"
)

# $1 key, $2 asset, $3 main (debited), $4 inflight, $5 amount, $6 reservation id, $7 now,
# $8 party id, $9 'reserved'.
RESERVE = f"""
WITH t AS (
    INSERT INTO transfer (idempotency_key, kind, asset, debit_account_id, credit_account_id,
                          amount_minor, reference, created_at)
    VALUES ($1::varchar, 'reserve', $2::varchar, $3::integer, $4::integer, $5::bigint,
            $6::varchar, $7::timestamptz)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, debit_account_id, credit_account_id, amount_minor
), {_APPLY}, r AS (
    INSERT INTO reservation (id, party_id, asset, amount_minor, status, created_at)
    SELECT $6, $8::integer, $2, $5, $9::varchar, $7 FROM t
    WHERE (SELECT count(*) FROM lo) + (SELECT count(*) FROM hi) = 2
)
SELECT (SELECT id FROM t) AS transfer_id,
       (SELECT count(*) FROM lo) + (SELECT count(*) FROM hi) AS updated, {_BALANCES}
"""

# $1 reservation id, $2 outcome, $3 now, $4 kind of the credited account, $5 key, $6 transfer
# kind, $7 'reserved', $8 'inflight'. Account codes as AccountRef.code writes them:
# p{party}:{kind}:{asset}.
RESOLVE = f"""
WITH r AS (
    UPDATE reservation SET status = $2::varchar, resolved_at = $3::timestamptz
    WHERE id = $1::varchar AND status = $7::varchar
    RETURNING party_id, asset, amount_minor
), leg AS (
    SELECT r.party_id, r.asset, r.amount_minor,
           (SELECT id FROM account WHERE code = format('p%s:%s:%s', r.party_id, $8::text, r.asset))
               AS debit_id,
           (SELECT id FROM account WHERE code = format('p%s:%s:%s', r.party_id, $4::text, r.asset))
               AS credit_id
    FROM r
), t AS (
    INSERT INTO transfer (idempotency_key, kind, asset, debit_account_id, credit_account_id,
                          amount_minor, reference, created_at)
    SELECT $5::varchar, $6::varchar, asset, debit_id, credit_id, amount_minor, $1, $3 FROM leg
    WHERE debit_id IS NOT NULL AND credit_id IS NOT NULL
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, debit_account_id, credit_account_id, amount_minor
), {_APPLY}
SELECT leg.party_id, leg.asset, leg.amount_minor, leg.debit_id, leg.credit_id,
       (SELECT id FROM t) AS transfer_id,
       (SELECT count(*) FROM lo) + (SELECT count(*) FROM hi) AS updated, {_BALANCES}
FROM leg
"""

# The balance a refused debit saw, locked as the generic path has it locked (lock order: the
# refused row is the lower id, or the higher one after the lower was locked by ``lo``).
BALANCE = "SELECT balance_minor FROM account WHERE id = $1::integer FOR NO KEY UPDATE"


async def _fetch(session: AsyncSession, sql: str, params: tuple[Any, ...]) -> Any:
    """The statement's one row (or None), inside the session's transaction.

    It runs on the session's asyncpg connection directly (asyncpg prepares it once per connection
    and caches it): through SQLAlchemy (``exec_driver_sql``) it cost about 0.09 ms more CPU, some
    15 % of a reservation. SQLAlchemy's asyncpg adapter sends BEGIN lazily, before the first
    statement IT executes, not when ``session.connection()`` returns: so if none has run yet in
    this transaction, the adapter is asked to begin it exactly as it would have, and a statement is
    never sent outside a transaction. Errors are raised as SQLAlchemy would raise them. Both use
    the adapter's private methods (SQLAlchemy 2.0 and 2.1 alike); tests/integration/
    test_ledger_fastpath.py fails if the transaction or the error translation stops working.
    """
    conn = await session.connection()
    sync = conn.sync_connection  # its DB-API connection without a greenlet hop, unless invalidated
    raw = sync.connection if sync and not sync.invalidated else await conn.get_raw_connection()
    adapter: Any = raw.dbapi_connection  # sqlalchemy's AsyncAdapt_asyncpg_connection
    driver: Any = raw.driver_connection  # asyncpg.Connection
    if not driver.is_in_transaction():
        await adapter._start_transaction()
        if not driver.is_in_transaction():  # e.g. AUTOCOMMIT: no transaction to be part of
            raise RuntimeError("the ledger's fast path needs a transaction")
    try:
        return await driver.fetchrow(sql, *params)
    except Exception as exc:
        error = _as_sqlalchemy_error(conn, adapter, sql, params, exc)
        if isinstance(error, DBAPIError) and error.connection_invalidated:
            await conn.invalidate(error)  # as SQLAlchemy does: the pool drops it, not reuses it
        raise error from exc


def _as_sqlalchemy_error(
    conn: AsyncConnection, adapter: Any, sql: str, params: tuple[Any, ...], exc: Exception
) -> BaseException:
    """``exc`` from asyncpg as SQLAlchemy would have raised it (IntegrityError, DBAPIError, …):
    a connection the server dropped marked ``connection_invalidated`` (core/stores.py reads it:
    the store is not there, try again), the parameters hidden if the engine hides them (they
    may name a party or a customer)."""
    dialect = conn.dialect
    dbapi_error: type[Exception] = dialect.loaded_dbapi.Error
    try:
        adapter._handle_exception(exc)  # raises the DB-API form of exc
    except dbapi_error as translated:
        return DBAPIError.instance(
            sql,
            params,
            translated,
            dbapi_error,
            hide_parameters=conn.sync_engine.hide_parameters,
            connection_invalidated=dialect.is_disconnect(translated, adapter, None),  # type: ignore[arg-type]
            dialect=dialect,
        )
    except Exception as other:
        return other
    return exc  # not reached: _handle_exception always raises


class PgFastPath:
    """Used by a PostgreSQL :class:`~core.ledger.ledger.Ledger` for reserve, capture and release;
    whatever the one statement cannot do (a replay, an account to create) falls back on the
    generic statements of ``ledger``."""

    def __init__(self, ledger: GenericLedger) -> None:
        self._ledger = ledger

    async def reserve(
        self,
        session: AsyncSession,
        *,
        reservation_id: str,
        party_id: int,
        asset: str,
        amount_minor: int,
    ) -> Posting:
        op_key = f"reserve:{reservation_id}"
        [leg] = checked_legs(op_key, [reserve_leg(reservation_id, party_id, asset, amount_minor)])
        ids = await self._ledger.resolve(session, [leg.debit, leg.credit])
        debit, credit = ids[leg.debit], ids[leg.credit]
        transfer_id, updated, *balances = await _fetch(
            session,
            RESERVE,
            (
                op_key,
                asset,
                debit,
                credit,
                amount_minor,
                reservation_id,
                utcnow(),
                party_id,
                ReservationStatus.RESERVED.value,
            ),
        )
        return await self._outcome(session, op_key, leg, ids, transfer_id, updated, balances)

    async def resolve(
        self, session: AsyncSession, reservation_id: str, outcome: ReservationStatus
    ) -> Posting:
        kind, target = resolution(outcome)
        op_key = f"{kind}:{reservation_id}"
        row = await _fetch(
            session,
            RESOLVE,
            (
                reservation_id,
                outcome.value,
                utcnow(),
                target.value,
                op_key,
                kind,
                ReservationStatus.RESERVED.value,
                AccountKind.INFLIGHT.value,
            ),
        )
        if row is None:
            return await self._ledger.already_resolved(session, reservation_id, outcome)
        party_id, asset, amount, debit, credit, transfer_id, updated, *balances = row
        leg = resolution_leg(reservation_id, outcome, party_id, asset, amount)
        if debit is None or credit is None:  # an account to create: the generic path does it
            return await self._ledger.post(session, op_key=op_key, legs=[leg])
        ids = {leg.debit: debit, leg.credit: credit}
        return await self._outcome(session, op_key, leg, ids, transfer_id, updated, balances)

    async def _outcome(
        self,
        session: AsyncSession,
        op_key: str,
        leg: Leg,
        ids: dict[AccountRef, int],
        transfer_id: int | None,
        updated: int,
        balances: list[int],
    ) -> Posting:
        """What the statement did, as ``Ledger.post`` would have reported it (``balances``: the
        lower and the higher account id's balance after it)."""
        if transfer_id is None:  # the key was posted before: a replay or a conflict
            return await self._ledger.replay(session, op_key=op_key, anchor=leg, ids=ids)
        if updated != 2:  # the credit only grows, so the guard that refused is the debit's
            [available] = await _fetch(session, BALANCE, (ids[leg.debit],))
            raise Overdraft(leg.debit, available, leg.amount_minor)
        lo_balance, hi_balance = balances
        debit_first = ids[leg.debit] < ids[leg.credit]
        debit_new, credit_new = (
            (lo_balance, hi_balance) if debit_first else (hi_balance, lo_balance)
        )
        amount = leg.amount_minor
        return Posting(
            transfer_ids=(transfer_id,),
            replayed=False,
            by_kind={leg.kind: amount},
            moves={
                leg.debit: Move(debit_new + amount, debit_new),
                leg.credit: Move(credit_new - amount, credit_new),
            },
        )
