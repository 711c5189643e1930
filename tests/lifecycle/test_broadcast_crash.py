"""A real ``airgate worker`` killed (SIGKILL) in the middle of a broadcast: a second one finishes
it, and nobody gets the message twice. The fake Bot API keeps its flood limits on throughout."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.models import BroadcastRecipient, Party, RecipientState
from core.services import broadcast
from core.services.audit import Actor
from core.services.seed import DISTRIBUTOR_MSISDN, seed_demo
from tests.fakes.telegram_api import FakeTelegram
from tests.helpers import killed_at_exit
from tests.integration.test_broadcast import add_retailers
from tests.lifecycle.conftest import Rig
from tests.lifecycle.test_crash import start_worker, worker_env

RETAILERS = 300  # about ten seconds at the bot's rate


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as running:
        yield running


@pytest.fixture
def rig_overrides(fake: FakeTelegram) -> dict[str, Any]:
    return {"telegram_token": fake.token, "telegram_api_url": fake.base_url}


def delivered(fake: FakeTelegram) -> Counter[int]:
    return Counter(int(c.params["chat_id"]) for c in fake.calls_to("sendMessage") if c.ok)


@pytest.mark.slow
async def test_worker_killed_mid_broadcast_resumes_without_repeats(
    rig_no_worker: Rig, fake: FakeTelegram, tmp_path: Path
) -> None:
    rig = rig_no_worker
    await seed_demo(rig.core, retailers=0)
    async with rig.core.sessions() as session:
        distributor = (
            await session.execute(select(Party).where(Party.msisdn == DISTRIBUTOR_MSISDN))
        ).scalar_one()
    assert distributor.id is not None
    await add_retailers(rig.core, distributor.id, RETAILERS)
    core = rig.core
    created = await broadcast.create(
        core,
        distributor_id=distributor.id,
        text="New Safaricom stock in",
        audience=broadcast.Audience("all"),
        key="crash-test",
        actor=Actor.cli(),
    )
    await rig.queue.broadcast(created.id)
    env = worker_env(rig, tmp_path) | {
        "AIRGATE_TELEGRAM_TOKEN": fake.token,
        "AIRGATE_TELEGRAM_API_URL": fake.base_url,
    }
    with killed_at_exit(start_worker(env, tmp_path)) as first:
        deadline = time.monotonic() + 30
        while len(delivered(fake)) < RETAILERS // 4:
            assert time.monotonic() < deadline, "the first worker never got going"
            await asyncio.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    at_kill = len(delivered(fake))
    assert at_kill < RETAILERS
    with killed_at_exit(start_worker(env, tmp_path)) as second:
        try:
            deadline = time.monotonic() + 90
            while not (report := await broadcast.report(core, created.id)).done:
                assert time.monotonic() < deadline, f"not finished: {report}"
                await asyncio.sleep(0.2)
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(20) == 0

    chats = delivered(fake)
    assert max(chats.values()) == 1  # nobody twice
    assert len(chats) > at_kill  # the second worker carried on
    async with core.sessions() as session:
        rows = (
            await session.execute(
                select(BroadcastRecipient.recipient, BroadcastRecipient.state).where(
                    BroadcastRecipient.broadcast_id == created.id
                )
            )
        ).all()
    by_state = Counter(state for _, state in rows)
    # Only a message in flight when the worker died is unconfirmed: it may or may not have gone.
    assert by_state[RecipientState.SENT] + by_state[RecipientState.UNCONFIRMED] == RETAILERS
    assert by_state[RecipientState.UNCONFIRMED] <= 8  # the sender's concurrency
    sent_rows = {int(r) for r, s in rows if s == RecipientState.SENT}
    unconfirmed = {int(r) for r, s in rows if s == RecipientState.UNCONFIRMED}
    assert sent_rows <= set(chats) <= sent_rows | unconfirmed
    assert fake.max_chat_rate() <= 1 and fake.max_global_rate() <= 30
