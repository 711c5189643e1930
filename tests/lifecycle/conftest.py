"""A whole delivery rig: the real sandbox over HTTP, real Redis, real SQL, a real arq worker.

The worker runs in this process (its own asyncio task, the same arq ``Worker`` ``airgate worker``
builds); the crash tests start ``airgate worker`` as a process instead.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import func, select

from core.context import Core, open_core
from core.db import upgrade
from core.jobs.queue import JobQueue
from core.models import Topup, TopupState
from core.models.topup import FINAL_STATES
from core.settings import Settings
from core.worker import build_worker, run_worker
from sandbox.app import build_app
from sandbox.config import SandboxConfig

# Small clocks so the unknown-outcome paths finish in seconds.
FAST = {
    "provider_timeout_s": 2.0,  # an immediate answer is never late, the hang (5 s) always is
    "provider_connect_timeout_s": 1.0,
    "topup_status_backoff_s": [1],
    "sweeper_interval_s": 1,
    "sweeper_stale_s": 1,
    "low_stock_minor": 0,  # no stock alerts among these messages (tests/integration/test_alerts.py)
}
SANDBOX = SandboxConfig(hang_s=5.0, settle_s=1.5, slow_ms=1500, seed=7)


@dataclass
class Rig:
    core: Core
    queue: JobQueue
    sandbox_url: str
    http: aiohttp.ClientSession
    settings: Settings

    async def stats(self, reference: str | None = None) -> dict[str, Any]:
        params = {"reference": reference} if reference else {}
        async with self.http.get(f"{self.sandbox_url}/sandbox/stats", params=params) as resp:
            body: dict[str, Any] = await resp.json()
            return body

    async def sms(self, to: str) -> list[dict[str, Any]]:
        async with self.http.get(f"{self.sandbox_url}/sandbox/sms", params={"to": to}) as resp:
            body = await resp.json()
            return list(body["messages"] if isinstance(body, dict) else body)

    async def wait_sms(
        self, to: str, count: int = 1, timeout_s: float = 10
    ) -> list[dict[str, Any]]:
        """The SMS sent to ``to``, once there are ``count`` (they go out just after the commit)."""
        deadline = time.monotonic() + timeout_s
        while len(found := await self.sms(to)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} SMS to {to} after {timeout_s} s: {found}")
            await asyncio.sleep(0.05)
        return found

    async def wait(
        self, topup_id: str, *, states: frozenset[str] = FINAL_STATES, timeout_s: float = 20
    ) -> Topup:
        deadline = time.monotonic() + timeout_s
        while True:
            async with self.core.sessions() as session:
                topup = await session.get(Topup, topup_id)
            assert topup is not None
            if topup.state in states:
                return topup
            if time.monotonic() > deadline:
                raise AssertionError(f"{topup_id} still {topup.state} after {timeout_s} s")
            await asyncio.sleep(0.05)

    async def delivered_count(self) -> int:
        async with self.core.sessions() as session:
            return int(
                (
                    await session.execute(
                        select(func.count()).where(Topup.state == TopupState.DELIVERED)
                    )
                ).scalar_one()
            )


async def start_sandbox(config: SandboxConfig) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(build_app(config), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
    except BaseException:
        await runner.cleanup()
        raise
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


@asynccontextmanager
async def sandbox_serving(config: SandboxConfig) -> AsyncIterator[str]:
    """A sandbox over HTTP on a free port, its URL; stopped on the way out."""
    runner, url = await start_sandbox(config)
    try:
        yield url
    finally:
        await runner.cleanup()


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SANDBOX


@pytest.fixture
def rig_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
async def rig_parts(
    database_url: str,
    redis_url: str,
    tmp_path: Path,
    sandbox_config: SandboxConfig,
    rig_overrides: dict[str, Any],
    _sqlite_from_template: None,
) -> AsyncIterator[tuple[Settings, str]]:
    from core.settings import load_settings
    from tests.conftest import TEST_PEPPER

    async with sandbox_serving(sandbox_config) as url:
        settings = load_settings(
            database_url=database_url,
            redis_url=redis_url,
            var_dir=tmp_path / "var",
            pin_pepper=TEST_PEPPER,
            provider_url=url,
            provider_auth_url=url,
            dtone_url=f"{url}/v1",  # the sandbox's DT One face, for AIRGATE_PROVIDER=dtone
            sms_url=url,
            **{**FAST, **rig_overrides},
        )
        yield settings, url


@pytest.fixture
async def rig_no_worker(rig_parts: tuple[Settings, str]) -> AsyncIterator[Rig]:
    settings, url = rig_parts
    async with open_core(settings) as core, aiohttp.ClientSession() as http:
        if core.engine.dialect.name == "sqlite":
            await upgrade(core.engine)
        queue = await JobQueue.connect(settings.redis_url)
        try:
            yield Rig(core=core, queue=queue, sandbox_url=url, http=http, settings=settings)
        finally:
            await queue.close()


WorkerTask = Callable[[], "asyncio.Task[None]"]


@pytest.fixture
async def rig(rig_no_worker: Rig) -> AsyncIterator[Rig]:
    """The rig with one in-process worker running for the test's length."""
    worker = build_worker(
        rig_no_worker.settings, redis_url=rig_no_worker.settings.redis_url, handle_signals=False
    )
    task = asyncio.create_task(run_worker(worker))
    try:
        yield rig_no_worker
    finally:
        worker.handle_sig(signal.SIGUSR1)
        await task
