"""Crashes and outages with real processes: ``airgate worker`` killed mid-delivery, an SMS gateway
that is down when the outcome is known."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from core.models import Notification, NotificationState, TopupState
from core.services.topups import confirm_topup
from core.worker import build_worker, run_worker
from tests.e2e.conftest import AIRGATE, free_port
from tests.helpers import eventually, handles_signal, killed_at_exit
from tests.lifecycle.conftest import FAST, Rig
from tests.lifecycle.test_paths import _agree, _shop, number


def worker_env(rig: Rig, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRGATE_")}
    env.update(
        AIRGATE_DATABASE_URL=rig.settings.database_url,
        AIRGATE_REDIS_URL=rig.settings.redis_url,
        AIRGATE_VAR_DIR=str(tmp_path / "var"),
        AIRGATE_PROVIDER_URL=rig.sandbox_url,
        AIRGATE_PROVIDER_AUTH_URL=rig.sandbox_url,
        AIRGATE_SMS_URL=rig.sandbox_url,
        AIRGATE_LOG_LEVEL="WARNING",
    )
    for name, value in FAST.items():
        text = json.dumps(value) if isinstance(value, list) else str(value)
        env[f"AIRGATE_{name.upper()}"] = text
    return env


def start_worker(env: dict[str, str], tmp_path: Path) -> subprocess.Popen[bytes]:
    with (tmp_path / f"worker-{time.monotonic_ns()}.log").open("wb") as log:
        return subprocess.Popen([AIRGATE, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)


def worker_logs(folder: Path) -> str:
    """What the workers :func:`start_worker` started in ``folder`` have printed."""
    return "".join(path.read_text(errors="replace") for path in sorted(folder.glob("worker-*.log")))


async def workers_up(folder: Path, *workers: subprocess.Popen[bytes]) -> None:
    """Until each worker has set its SIGTERM handler (from then on it stops cleanly and takes
    jobs); one that exits, or any not up within 60 s on a loaded machine, fails with their logs."""

    async def up() -> bool:
        for worker in workers:
            assert worker.poll() is None, f"worker {worker.pid} exited ({worker.returncode})"
        return all(handles_signal(w.pid, signal.SIGTERM) for w in workers)

    try:
        await eventually(up, what="the workers started", timeout_s=60)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; their logs:\n{worker_logs(folder)[-4000:]}") from None


@pytest.mark.slow
async def test_worker_killed_mid_delivery_delivers_exactly_once(
    rig_no_worker: Rig, tmp_path: Path
) -> None:
    rig = rig_no_worker
    shop = await _shop(rig)
    env = worker_env(rig, tmp_path)
    with killed_at_exit(start_worker(env, tmp_path)) as first:
        # …5 answers after slow_ms: the worker is inside the HTTP call when it dies.
        topup = await confirm_topup(
            rig.core, rig.queue, party_id=shop.id, msisdn=number(5), amount_minor=5_000,
            channel="test",
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while (await rig.stats())["requests"] < 1:
            assert time.monotonic() < deadline, "the worker never sent"
            await asyncio.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert (await rig.wait(topup.id, states=frozenset({TopupState.RESERVED}))).sends == 0
    with killed_at_exit(start_worker(env, tmp_path)) as second:
        try:
            # arq re-runs the job once the dead worker's in-progress mark expires
            # (job time-out + 10 s).
            done = await rig.wait(topup.id, timeout_s=60)
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(20) == 0
    assert done.state == TopupState.DELIVERED
    stats = await rig.stats(topup.id)
    assert stats["deliveries_by_reference"] == 1 and stats["double_deliveries"] == 0
    # The second worker asked the sandbox first: the dead worker's send is the only one.
    assert stats["sends_by_reference"] == 1
    await _agree(rig)


async def test_sms_gateway_down_then_back_the_sweeper_sends_what_is_owed(
    rig_no_worker: Rig,
) -> None:
    rig = rig_no_worker
    shop = await _shop(rig)
    nowhere = f"http://127.0.0.1:{free_port()}"
    down = rig.settings.model_copy(update={"sms_url": nowhere})
    worker = build_worker(down, redis_url=down.redis_url, handle_signals=False)
    task = asyncio.create_task(run_worker(worker))
    try:
        topup = await confirm_topup(
            rig.core, rig.queue, party_id=shop.id, msisdn=number(0), amount_minor=5_000,
            channel="test",
        )  # fmt: skip
        assert (await rig.wait(topup.id)).state == TopupState.DELIVERED
        deadline = time.monotonic() + 10
        while True:
            async with rig.core.sessions() as session:
                notes = list((await session.execute(select(Notification))).scalars())
            if len(notes) == 2 and all(n.attempts >= 1 for n in notes):
                break
            assert time.monotonic() < deadline, notes
            await asyncio.sleep(0.05)
        assert {n.state for n in notes} == {NotificationState.PENDING}
        assert await rig.sms(shop.msisdn) == []
    finally:
        worker.handle_sig(signal.SIGUSR1)
        await task
    # The gateway is back (a worker with the right URL): its sweeper sends both, once each.
    worker = build_worker(rig.settings, redis_url=rig.settings.redis_url, handle_signals=False)
    task = asyncio.create_task(run_worker(worker))
    try:
        await rig.wait_sms(shop.msisdn)
        await rig.wait_sms("+254712345670")
    finally:
        worker.handle_sig(signal.SIGUSR1)
        await task
    assert len(await rig.sms(shop.msisdn)) == 1
    await _agree(rig)
