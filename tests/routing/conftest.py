"""Two aggregator accounts ("alpha", "beta"), each a real sandbox over HTTP, routed by a real arq
worker in this process, on real Redis and real SQL (tests/lifecycle/conftest.py's rig, twice)."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from core.context import Core, open_core
from core.db import upgrade
from core.jobs.queue import JobQueue
from core.models import Party, Topup
from core.models.topup import FINAL_STATES
from core.services.topups import confirm_topup
from core.settings import Settings, load_settings
from core.worker import build_worker, run_worker
from sandbox.config import SandboxConfig
from tests.conftest import TEST_PEPPER
from tests.helpers import assert_ledger_ok, chain, give_retailer_stock
from tests.lifecycle.conftest import FAST, SANDBOX, Rig, start_sandbox

ACCOUNTS = ("alpha", "beta")
STOCK = 1_000_000  # KES 10,000


@dataclass
class Routed:
    """The rig, with a sandbox per account: ``rig.sandbox_url`` is beta's (SMS go there)."""

    rig: Rig
    urls: dict[str, str]
    runners: dict[str, web.AppRunner]
    adapters: dict[str, str]
    shop: Party | None = None
    workers: list[asyncio.Task[None]] = field(default_factory=list)
    stoppers: list[Any] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    # A stopped account's records as they were when it stopped: (totals, per reference).
    kept: dict[str, tuple[dict[str, Any], dict[str, dict[str, Any]]]] = field(default_factory=dict)

    @property
    def core(self) -> Core:
        return self.rig.core

    async def stats(self, account: str, reference: str | None = None) -> dict[str, Any]:
        if account in self.kept:
            totals, by_reference = self.kept[account]
            return by_reference.get(reference, {}) if reference else totals
        params = {"reference": reference} if reference else {}
        face = "/sandbox/dtone/stats" if self.adapters[account] == "dtone" else "/sandbox/stats"
        async with self.rig.http.get(f"{self.urls[account]}{face}", params=params) as r:
            body: dict[str, Any] = await r.json()
            return body

    def start_worker(self) -> None:
        """An arq worker in this process, as `airgate worker` builds it, until the test ends."""
        settings = self.rig.settings
        worker = build_worker(settings, redis_url=settings.redis_url, handle_signals=False)
        self.workers.append(asyncio.create_task(run_worker(worker)))
        self.stoppers.append(worker)

    async def stop_workers(self) -> None:
        for worker in self.stoppers:
            worker.handle_sig(signal.SIGUSR1)
        await asyncio.gather(*self.workers)

    async def stop(self, account: str) -> None:
        """The account's aggregator goes away: its port refuses connections from now on (its
        records so far are kept for :meth:`assert_delivered_once`)."""
        by_reference = {ref: await self.stats(account, ref) for ref in self.sent}
        self.kept[account] = (await self.stats(account), by_reference)
        await self.runners.pop(account).cleanup()

    async def top_up(self, msisdn: str = "0712345670", amount_minor: int = 5_000) -> str:
        assert self.shop is not None
        topup = await confirm_topup(
            self.core,
            self.rig.queue,
            party_id=self.shop.id,
            msisdn=msisdn,
            amount_minor=amount_minor,
            channel="test",
            client_key=f"k{len(self.sent)}",
            confirm_repeat=True,
        )
        self.sent.append(topup.id)
        return topup.id

    async def final(self, topup_id: str, timeout_s: float = 30) -> Topup:
        return await self.rig.wait(topup_id, states=FINAL_STATES, timeout_s=timeout_s)

    async def all_final(self, timeout_s: float = 60) -> list[Topup]:
        return list(await asyncio.gather(*(self.final(t, timeout_s) for t in self.sent)))

    async def assert_delivered_once(self) -> None:
        """Each of ours delivered by exactly one account iff it is delivered here; each
        sandbox's delivered count is the number of ours it holds; the ledger verifies."""
        topups = await self.all_final()
        for topup in topups:
            stats = {name: await self.stats(name, topup.id) for name in ACCOUNTS}
            deliveries = sum(s.get("deliveries_by_reference", 0) for s in stats.values())
            assert deliveries == (topup.state == "delivered"), (topup.id, topup.state, stats)
            if deliveries:
                assert stats[topup.provider or ""]["deliveries_by_reference"] == 1
        for name in ACCOUNTS:
            ours = sum(t.state == "delivered" and t.provider == name for t in topups)
            assert (await self.stats(name))["delivered"] == ours, name
            assert (await self.stats(name))["double_deliveries"] == 0
        await assert_ledger_ok(self.core)


@pytest.fixture
def sandboxes() -> dict[str, SandboxConfig]:
    return {name: SANDBOX for name in ACCOUNTS}


@pytest.fixture
def routing_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
def worker_at_start() -> bool:
    return True


@pytest.fixture
def account_extra() -> dict[str, dict[str, Any]]:
    """Per account, more of its AIRGATE_PROVIDERS entry (price_bps, low_float_minor)."""
    return {}


def providers_json(urls: dict[str, str], **extra: dict[str, Any]) -> str:
    """The accounts; an extra ``url_path`` is appended to the sandbox's URL (DT One's ``/v1``)."""
    accounts = []
    for name, url in urls.items():
        entry = {"name": name, "url": url, "key": "sandbox", "secret": "sandbox"}
        entry |= extra.get(name, {})
        entry["url"] = url + str(entry.pop("url_path", ""))
        accounts.append(entry)
    return json.dumps(accounts)


@pytest.fixture
async def routed(
    database_url: str,
    redis_url: str,
    tmp_path: Path,
    sandboxes: dict[str, SandboxConfig],
    routing_overrides: dict[str, Any],
    account_extra: dict[str, dict[str, Any]],
    worker_at_start: bool,
    _sqlite_from_template: None,
) -> AsyncIterator[Routed]:
    runners: dict[str, web.AppRunner] = {}
    urls: dict[str, str] = {}
    try:
        for name in ACCOUNTS:
            runners[name], urls[name] = await start_sandbox(sandboxes[name])
        settings: Settings = load_settings(
            database_url=database_url,
            redis_url=redis_url,
            var_dir=tmp_path / "var",
            pin_pepper=TEST_PEPPER,
            providers=providers_json(urls, **account_extra),
            sms_url=urls["beta"],
            **{**FAST, **routing_overrides},
        )
        async with open_core(settings) as core, aiohttp.ClientSession() as http:
            if core.engine.dialect.name == "sqlite":
                await upgrade(core.engine)
            # Catalog, platform party, distributor and a stocked shop before the worker starts
            # (its first float poll may owe the platform an alert).
            distributor, (shop,) = await chain(core)
            await give_retailer_stock(core, distributor, shop, STOCK, "r1")
            queue = await JobQueue.connect(settings.redis_url)
            rig = Rig(
                core=core, queue=queue, sandbox_url=urls["beta"], http=http, settings=settings
            )
            adapters = {n: account_extra.get(n, {}).get("adapter", "reloadly") for n in ACCOUNTS}
            routed = Routed(rig=rig, urls=urls, runners=runners, adapters=adapters, shop=shop)
            if worker_at_start:
                routed.start_worker()
            try:
                yield routed
            finally:
                await routed.stop_workers()
                await queue.close()
    finally:
        for runner in runners.values():
            await runner.cleanup()
