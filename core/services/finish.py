"""Group commit of final states: many top-ups' outcomes written in one SQL transaction.

Invariant (the one of core/services/delivery.py): a top-up becomes final, its reservation is
captured or released, and the messages it owes are recorded in ONE transaction, at most once. A
batch keeps that per top-up: the rows are locked and filtered to those still open, each open one
is resolved in the ledger (and its open support case closed: support.py ``close_settled``),
and the batch commits as a whole. If anything in a batch fails (a deadlock with another worker's
batch, a constraint), every item of it is written again in a transaction of its own, so one bad
item fails only its own job.

Why: at hundreds of top-ups a second the transaction per outcome (six statements) was most of the
worker's CPU and of PostgreSQL's (docs/BENCHMARKS.md). A batch costs six statements plus one per
top-up (the ledger resolution); the fifth finds the outcome callbacks owed, written as outbox rows
in the same transaction (core/services/callbacks/outbox.py), the sixth looks for open support
cases to close. Batches form by themselves: while one is written, the outcomes that arrive wait
for the next; an idle worker writes a lone outcome at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Core
from core.jobs.queue import JobQueue
from core.logging import get_logger
from core.models import Account, Topup, TopupState
from core.models.topup import SETTLEABLE_STATES
from core.services.callbacks import outbox as callbacks
from core.services.notify import Message, add_owed
from core.services.support import Closing, close_settled

log = get_logger(__name__)
topup_t = Topup.__table__  # type: ignore[attr-defined]
account_t = Account.__table__  # type: ignore[attr-defined]

MAX_BATCH = 16  # outcomes per transaction: bounds how long it holds retailers' account locks

_OPEN = (
    select(topup_t.c.id)
    .where(
        topup_t.c.id.in_(bindparam("ids", expanding=True)),
        topup_t.c.state.in_(SETTLEABLE_STATES),
    )
    .order_by(topup_t.c.id)
    .with_for_update()
)
_FINAL = (
    update(topup_t)
    .where(topup_t.c.id == bindparam("b_id"))
    .values(
        state=bindparam("b_state"),
        final_at=bindparam("b_final_at"),
        sends=bindparam("b_sends"),
        checks=bindparam("b_checks"),
        provider=bindparam("b_provider"),
        providers_tried=bindparam("b_providers_tried"),
        provider_ref=bindparam("b_provider_ref"),
        operator_txn_id=bindparam("b_operator_txn_id"),
        detail=bindparam("b_detail"),
    )
)
_STOCK = select(account_t.c.code, account_t.c.balance_minor).where(
    account_t.c.code.in_(bindparam("codes", expanding=True))
)


@dataclass
class Final:
    """One top-up's outcome. ``owed`` builds its messages from its retailer's stock left (the
    balance of ``stock_account``, read in the same transaction)."""

    topup_id: str
    party_id: int
    state: TopupState
    row: dict[str, Any]  # _FINAL's b_* values
    stock_account: str  # the retailer's main account of the asset (also its lock order)
    owed: Callable[[int], list[Message]]
    closing: Closing | None = None  # who settles it, if not the worker on the aggregator's word
    done: asyncio.Future[list[Message] | None] = field(init=False)


def _lock_order(item: Final) -> tuple[int, str, bool, str]:
    """Items in the order that locks ledger accounts in id order, as every ledger write does.

    A party's accounts of one asset are created main, then inflight (its first reservation needs
    stock), then sold (its first capture), so their ids rise in that order. Per party and asset, a
    release (main, inflight) therefore goes before a capture (inflight, sold); parties in id order
    keep two batches from crossing. A reservation locks main then inflight of one party and asset,
    so it cannot wait in a cycle with a batch either.
    """
    return (item.party_id, item.stock_account, item.state == TopupState.DELIVERED, item.topup_id)


class Finisher:
    """``queue``: where the outcome callbacks a batch owes are enqueued after its commit."""

    def __init__(self, core: Core, *, queue: JobQueue | None = None) -> None:
        self.core = core
        self.queue = queue
        self._queue: list[Final] = []
        self._writer: asyncio.Task[None] | None = None

    async def finish(self, item: Final) -> list[Message] | None:
        """Write ``item``; its messages once committed, None if it was already final."""
        item.done = asyncio.get_running_loop().create_future()
        self._queue.append(item)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all())
        return await item.done

    async def _write_all(self) -> None:
        batch: list[Final] = []
        try:
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                await self._write_batch(batch)
        except BaseException as exc:  # cancelled (shutdown): no waiting job may hang
            for item in [*batch, *self._queue]:
                if not item.done.done():
                    item.done.set_exception(exc)
            self._queue = []
            raise
        finally:
            self._writer = None

    async def _write_batch(self, batch: list[Final]) -> None:
        # A job cancelled while it waited (arq's time-out, SIGTERM) cancelled its future too:
        # its outcome is still written, nobody is told.
        try:
            results = await self._write(batch)
        except Exception as exc:  # noqa: BLE001 - any failure: each item alone, below
            if len(batch) == 1:
                if not batch[0].done.done():
                    batch[0].done.set_exception(exc)
                return
            log.warning("finish.batch_failed", size=len(batch), error=type(exc).__name__)
            for item in batch:
                await self._write_batch([item])
            return
        for item, result in zip(batch, results, strict=True):
            if not item.done.done():
                item.done.set_result(result)

    async def _write(self, batch: Sequence[Final]) -> list[list[Message] | None]:
        ordered = sorted(batch, key=_lock_order)
        async with self.core.transaction() as session:
            ids = [item.topup_id for item in ordered]
            still_open = set((await session.execute(_OPEN, {"ids": ids})).scalars())
            todo = [item for item in ordered if item.topup_id in still_open]
            if todo:
                await session.execute(_FINAL, [item.row for item in todo])
            for item in todo:
                await self._resolve(session, item)
            await close_settled(session, [(i.topup_id, i.state, i.row, i.closing) for i in todo])
            stock = await self._stock(session, todo)
            owed = {item.topup_id: item.owed(stock.get(item.stock_account, 0)) for item in todo}
            await add_owed(session, [m for messages in owed.values() for m in messages])
            window_s = self.core.settings.callback_window_s
            calls = await callbacks.owe(session, [i.topup_id for i in todo], window_s=window_s)
        if calls and self.queue is not None:
            await callbacks.enqueue(self.queue, calls)
        return [owed.get(item.topup_id) for item in batch]

    async def _resolve(self, session: AsyncSession, item: Final) -> None:
        if item.state == TopupState.DELIVERED:
            await self.core.ledger.capture(session, reservation_id=item.topup_id)
        else:
            await self.core.ledger.release(session, reservation_id=item.topup_id)

    async def _stock(self, session: AsyncSession, todo: Sequence[Final]) -> dict[str, int]:
        codes = sorted({item.stock_account for item in todo if item.state == TopupState.DELIVERED})
        if not codes:
            return {}
        rows = await session.execute(_STOCK, {"codes": codes})
        return {code: balance for code, balance in rows}
