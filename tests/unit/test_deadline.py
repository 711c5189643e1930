"""The deadline of a piece of work (core/deadline.py) and the per-payer queue (core/hot_rows.py),
on a real event loop: what gives up when, in what order the queue lets its waiters in."""

from __future__ import annotations

import asyncio
import time

import pytest

from core import deadline
from core.errors import Busy, DeadlineExceeded, TryAgain
from core.hot_rows import PayerGates


async def test_work_past_its_budget_is_cancelled_and_says_deadline_exceeded() -> None:
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as info:
        async with deadline.bounded(0.2):
            await asyncio.sleep(5)
    assert time.monotonic() - started < 1
    assert isinstance(info.value, TryAgain) and info.value.budget_s == 0.2
    assert deadline.current() is None  # the budget ends with its block


async def test_money_refuses_to_start_with_too_little_left() -> None:
    async with deadline.bounded(deadline.MONEY_MIN_S + 0.1) as budget:
        await asyncio.sleep(0.2)
        with pytest.raises(DeadlineExceeded):
            budget.start_money()


async def test_once_money_started_the_timer_no_longer_cancels() -> None:
    """A money transaction is never cut halfway: the work finishes past its budget."""
    async with deadline.bounded(deadline.MONEY_MIN_S + 0.1) as budget:
        budget.start_money()
        await asyncio.sleep(0.8)  # past the budget: not cancelled
    assert budget.left_s() < 0


async def test_a_time_out_of_someone_else_is_not_the_deadlines() -> None:
    with pytest.raises(TimeoutError):
        async with deadline.bounded(5):
            async with asyncio.timeout(0.05):
                await asyncio.sleep(1)


async def test_without_a_budget_nothing_is_bounded() -> None:
    assert deadline.current() is None


async def test_the_queue_is_first_come_first_served() -> None:
    gates = PayerGates(max_waiting=10)
    order: list[int] = []

    async def step(n: int) -> None:
        async with gates.turn(7):
            order.append(n)
            await asyncio.sleep(0.01)

    await asyncio.gather(*(step(n) for n in range(8)))
    assert order == list(range(8))
    assert gates.waiting(7) == 0 and not gates._gates  # a payer not in use has no gate


async def test_past_the_queue_is_busy_at_once() -> None:
    gates = PayerGates(max_waiting=2)
    release = asyncio.Event()

    async def hold() -> None:
        async with gates.turn(7):
            await release.wait()

    tasks = [asyncio.create_task(hold()) for _ in range(3)]  # one inside, two waiting
    await asyncio.sleep(0.01)
    assert gates.waiting(7) == 2
    with pytest.raises(Busy) as info:
        async with gates.turn(7):
            pass
    assert info.value.waiting == 2
    async with gates.turn(8):  # another payer does not wait
        pass
    release.set()
    await asyncio.gather(*tasks)


async def test_a_wait_in_the_queue_ends_in_time_for_money_to_start() -> None:
    gates = PayerGates(max_waiting=5)
    release = asyncio.Event()

    async def hold() -> None:
        async with gates.turn(7):
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0.01)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        async with deadline.bounded(deadline.MONEY_MIN_S + 0.3), gates.turn(7):
            pass
    assert time.monotonic() - started < 0.6  # gave up with MONEY_MIN_S still left
    release.set()
    await holder
    assert not gates._gates


async def test_a_turn_inside_a_turn_of_the_same_payer_is_the_outer_one() -> None:
    """A confirmation's PIN check and reservation share one turn: no deadlock, no second wait."""
    gates = PayerGates(max_waiting=0)
    async with gates.turn(7):
        async with gates.turn(7):  # the same task: not queued behind itself
            assert gates.waiting(7) == 0
        async with gates.turn(8):
            pass
    assert not gates._gates
