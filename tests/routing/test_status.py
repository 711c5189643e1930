"""The accounts' float and health as an operator sees them: a low float alerts the platform once
per crossing; `airgate provider status` (a process) and /metrics show breakers, counts and float."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from airgate.server import build_app
from core.models import Notification
from core.routing.health import Health
from core.routing.router import Router
from core.services import floats
from tests.helpers import eventually
from tests.lifecycle.conftest import SANDBOX
from tests.routing.conftest import Routed

LOW_MINOR = 500_000  # KES 5,000
ALPHA_BALANCE = 100_000  # KES 1,000: under it


@pytest.fixture
def sandboxes() -> dict[str, object]:
    return {
        "alpha": dataclasses.replace(SANDBOX, initial_balance_minor=ALPHA_BALANCE),
        "beta": SANDBOX,
    }


@pytest.fixture
def account_extra() -> dict[str, dict[str, object]]:
    return {"alpha": {"low_float_minor": LOW_MINOR}, "beta": {"low_float_minor": LOW_MINOR}}


async def _poll(routed: Routed) -> list[str]:
    settings = routed.rig.settings
    redis = routed.rig.queue.redis
    router = Router.from_settings(settings, health=Health.from_settings(settings, redis))
    sent: list[object] = []

    async def outbox(messages: object) -> None:
        sent.append(messages)

    try:
        return await floats.poll(
            routed.core, redis=redis, accounts=list(router.accounts.values()), outbox=outbox
        )
    finally:
        await router.close()


async def _float_alerts(routed: Routed) -> list[Notification]:
    async with routed.core.sessions() as session:
        rows = await session.execute(select(Notification).where(Notification.key.like("float:%")))
        return list(rows.scalars())


async def test_a_low_float_alerts_the_platform_once_per_crossing(routed: Routed) -> None:
    # The worker's first poll, at its start, found alpha under its threshold and told the platform.
    [alert] = await eventually(lambda: _float_alerts(routed), what="the float alert")
    assert alert.recipient == "+254799999999"  # the platform party (tests/helpers.py chain)
    assert "alpha" in alert.text and "KES 5,000" in alert.text and "below" in alert.text
    assert await _poll(routed) == []  # still low: told once, whoever polls
    assert len(await _float_alerts(routed)) == 1


async def test_status_and_metrics_show_breakers_counts_and_float(
    routed: Routed, tmp_path: Path
) -> None:
    await routed.stop("alpha")
    for _ in range(5):
        await routed.final(await routed.top_up())
    await _poll(routed)
    settings = routed.rig.settings
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRGATE_")},
        "AIRGATE_REDIS_URL": settings.redis_url,
        "AIRGATE_VAR_DIR": str(tmp_path / "cli"),
        "AIRGATE_PROVIDERS": json.dumps(
            [
                {"name": a.name, "url": a.url, "key": "sandbox", "secret": "sandbox"}
                for a in settings.accounts()
            ]
        ),
    }
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("airgate")),
        *("provider", "status", "--json"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    text = stdout.decode()
    shown = {a["name"]: a for a in json.loads(text)["accounts"]}
    alpha, beta = shown["alpha"], shown["beta"]
    [alpha_op] = alpha["operators"]
    assert (alpha["health"], alpha_op["breaker"], alpha_op["counts"]["error"]) == (
        "open",
        "open",
        5,
    )
    assert "not sent" in alpha_op["last_error"]
    assert alpha["float"]["error"] and alpha["float"]["balance_minor"] is None
    assert beta["health"] == "ok" and beta["operators"][0]["counts"]["ok"] == 5
    assert beta["float"]["balance_minor"] > 0 and beta["float"]["currency"] == "KES"
    assert "sandbox" not in text.replace('"adapter"', "")  # no key or secret shown
    async with TestClient(TestServer(build_app(settings))) as client:
        page = await (await client.get("/metrics")).text()
    assert 'airgate_provider_breaker_state{account="alpha",operator="safaricom-ke"} 2.0' in page
    assert 'airgate_provider_breaker_state{account="beta",operator="safaricom-ke"} 0.0' in page
    assert (
        'airgate_provider_results{account="beta",operator="safaricom-ke",result="ok"} 5.0' in page
    )
    assert 'airgate_provider_float_minor{account="beta",currency="KES"}' in page
    assert 'airgate_provider_float_low{account="beta"} 0.0' in page
