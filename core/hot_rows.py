"""Money steps of one payer queue here, in the process, not on the payer's row in the database.

Every money step of a payer locks that payer's rows (its party row, its balance), so two of them
run one after the other whatever we do. Left to the database, a burst of 200 top-ups of one
retailer is 200 pooled connections each holding a backend that waits on one row lock, the pool
empty for everyone else. Queued here instead, each process has at most one transaction per payer
in the database at a time (so across N processes at most N backends wait on a payer's row), and
the rest wait as asyncio waiters: no connection, no backend.

Invariants: a payer's gate is first come, first served (asyncio.Lock wakes its waiters in order
and a newcomer never overtakes one); at most ``max_waiting`` wait behind the one inside, the next
is refused at once with :class:`Busy`; a wait ends by the work's deadline (core/deadline.py) with
:class:`DeadlineExceeded`, and nothing was done either way. A payer with no one inside and no one
waiting has no gate (the map holds only payers in use). The uncontended path takes a free lock:
no task switch, no wait (a class, not a generator-based context manager: a few microseconds on
every top-up). A turn taken inside a turn of the same payer in the same task is the outer one
(a confirmation holds one turn for its PIN check and its reservation, so it is not queued again
behind later arrivals); a task started inside a turn must not take one of its own.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar, Token
from types import TracebackType

from core import deadline
from core.errors import Busy, DeadlineExceeded

# The payers whose turn the running task holds.
_held: ContextVar[tuple[int, ...]] = ContextVar("airgate_turns_held", default=())


class _Gate:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0  # inside or waiting


class PayerGates:
    """One FIFO gate per payer in use, each with at most ``max_waiting`` waiters."""

    def __init__(self, *, max_waiting: int) -> None:
        self.max_waiting = max_waiting
        self._gates: dict[int, _Gate] = {}

    def waiting(self, payer: int) -> int:
        """How many wait behind the one inside (0 when the gate is free or absent)."""
        gate = self._gates.get(payer)
        return 0 if gate is None else max(gate.users - 1, 0)

    def turn(self, payer: int) -> _Turn:
        """``async with gates.turn(payer)``: the payer's turn; Busy when its queue is full,
        DeadlineExceeded when the work's deadline would pass before money could start."""
        return _Turn(self, payer)


class _Turn:
    __slots__ = ("_gates", "_payer", "_gate", "_token")

    def __init__(self, gates: PayerGates, payer: int) -> None:
        self._gates = gates
        self._payer = payer
        self._gate: _Gate | None = None  # None: the outer turn is this task's already

    async def __aenter__(self) -> None:
        held = _held.get()
        if self._payer in held:
            return
        gates = self._gates._gates
        gate = gates.get(self._payer)
        if gate is None:
            gate = gates[self._payer] = _Gate()
        elif gate.users > self._gates.max_waiting:  # one inside and max_waiting behind it
            raise deadline.refused(Busy(waiting=gate.users - 1))
        gate.users += 1
        self._gate = gate
        try:
            await _acquire(gate.lock)
        except BaseException:
            self._leave(gate)
            raise
        self._token: Token[tuple[int, ...]] = _held.set((*held, self._payer))

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        gate = self._gate
        if gate is None:
            return
        _held.reset(self._token)
        gate.lock.release()
        self._leave(gate)

    def _leave(self, gate: _Gate) -> None:
        gate.users -= 1
        if gate.users == 0:
            del self._gates._gates[self._payer]


async def _acquire(lock: asyncio.Lock) -> None:
    if not lock.locked():
        await lock.acquire()  # free: taken without a task switch
        return
    budget = deadline.current()
    if budget is None:
        await lock.acquire()
        return
    # Money must still be able to start after the wait (Deadline.start_money's minimum).
    wait_s = budget.left_s() - deadline.MONEY_MIN_S
    try:
        async with asyncio.timeout(max(wait_s, 0)):
            await lock.acquire()
    except TimeoutError:
        raise deadline.refused(DeadlineExceeded(budget_s=budget.budget_s)) from None
