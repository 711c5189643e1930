"""A request's time budget, carried through the core, checked before money moves.

A channel opens one with :func:`bounded` around the work of one hop, update or API request (the
USSD gateway, Telegram and the API client each wait only so long); the core reads it with
:func:`current` (a context variable: no service signature carries it, and the core never needs to
know which channel set it). Without one (the CLI, the worker) nothing here changes anything.

Invariants:

- Money moves only after :meth:`Deadline.start_money`, which refuses (:class:`DeadlineExceeded`,
  nothing done) when less than ``MONEY_MIN_S`` is left. From then on the hop's timer no longer
  cancels anything: a money transaction is never cut halfway, and a hop that moved money always
  gets to say so (its remaining steps are bounded by the stores' own time-outs). Inside it, a wait
  for a row lock (PostgreSQL ``lock_timeout``) or for SQLite's write lock (``busy_timeout``) is
  bounded by what is left less ``ANSWER_S``, and fails as DeadlineExceeded, rolled back.
- Before that point the hop's timer cancels whatever is waiting (Redis, a pool checkout, a queue
  for a hot row): :func:`bounded` raises DeadlineExceeded, and nothing was written that a retry
  would not find as it left it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import TypeVar

from prometheus_client import Counter

from core.errors import Busy, DeadlineExceeded

# Kept back at the end of a budget to write the answer (the session's save, the reply itself):
# a lock wait gives up this long before the deadline.
ANSWER_S = 0.3
# Money starts only with at least this left: a top-up's transaction is a few milliseconds when
# nothing waits, the rest is the answer's. Less, and the user would hear "accepted" too late.
MONEY_MIN_S = 0.5

# On /metrics: what the budget refused, nothing moved (a rise is a hot retailer or slow stores).
REFUSED = Counter(
    "airgate_refused_before_money",
    "Hops and requests refused before money moved, by reason: deadline_exceeded or busy",
    ["reason"],
)

Refusal = TypeVar("Refusal", Busy, DeadlineExceeded)

_current: ContextVar[Deadline | None] = ContextVar("airgate_deadline", default=None)


class Deadline:
    """When the work in hand must have answered by (``time.monotonic()`` seconds), and whether
    money has started to move in it (the timer is then off)."""

    __slots__ = ("at", "budget_s", "_timer")

    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s
        self.at = time.monotonic() + budget_s
        self._timer: asyncio.Timeout | None = None

    def left_s(self) -> float:
        return self.at - time.monotonic()

    def lock_wait_s(self) -> float:
        """How long a lock may be waited for in a money transaction (at least 10 ms)."""
        return max(self.left_s() - ANSWER_S, 0.01)

    def lock_timeout(self) -> str:
        """:meth:`lock_wait_s` as a value of PostgreSQL's ``lock_timeout``."""
        return f"{int(self.lock_wait_s() * 1000)}ms"

    def check(self, *, need_s: float = MONEY_MIN_S) -> None:
        """DeadlineExceeded unless ``need_s`` is still left."""
        if self.left_s() < need_s:
            raise refused(DeadlineExceeded(budget_s=self.budget_s))

    def start_money(self) -> None:
        """From here money moves: refused if too little is left, else the timer goes off."""
        timer = self._timer
        if timer is not None and timer.expired():  # its cancel is on its way: nothing moved
            raise refused(DeadlineExceeded(budget_s=self.budget_s))
        self.check()
        if timer is not None:
            timer.reschedule(None)
            self._timer = None


def refused(exc: Refusal) -> Refusal:
    """``exc`` counted on /metrics, as it is raised (a channel turns it into words later)."""
    REFUSED.labels(reason=exc.code).inc()
    return exc


def current() -> Deadline | None:
    """The budget of the work in hand, if a channel set one."""
    return _current.get()


@asynccontextmanager
async def bounded(budget_s: float) -> AsyncIterator[Deadline]:
    """Run the block within ``budget_s``: past it, whatever waits is cancelled and
    DeadlineExceeded raised, unless money started to move (see the module's invariants)."""
    deadline = Deadline(budget_s)
    token = _current.set(deadline)
    timer = asyncio.timeout(budget_s)
    deadline._timer = timer
    try:
        async with timer:
            yield deadline
    except TimeoutError:
        if not timer.expired():  # someone else's time-out (a store's): theirs to say
            raise
        raise refused(DeadlineExceeded(budget_s=budget_s)) from None
    finally:
        _current.reset(token)
