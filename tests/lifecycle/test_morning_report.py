"""The morning report through the real worker: a distributor linked on Telegram gets a chart (a
real PNG) with its summary as the caption on the fake Bot API; one without Telegram gets the
summary by SMS at the sandbox; two senders at once, or a second run, send nothing twice."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from core.models import ReportSend, TopupState
from core.providers.sms import AfricasTalkingSms
from core.providers.telegram import TelegramSender
from core.services import identities, stock
from core.services.daily.morning import Morning
from core.worker import build_worker, run_worker
from tests.fakes.telegram_api import FakeTelegram, fake_telegram  # noqa: F401
from tests.helpers import ADMIN, chain, eventually
from tests.history import (
    PLATFORM,
    ZONE,
    Clock,
    History,
    build,
    day_of_trade,
    finish,
    local,
    patch_clocks,
)
from tests.lifecycle.conftest import Rig

CHAT = 9001


@pytest.fixture
def rig_overrides(fake_telegram: FakeTelegram) -> dict[str, Any]:  # noqa: F811
    fake_telegram.limits = False
    return {
        "telegram_token": fake_telegram.token,
        "telegram_api_url": fake_telegram.base_url,
        "daily_report_hour": 0,  # due at once: yesterday's report
        "timezone": ZONE,
    }


@pytest.fixture
async def yesterday_s_trade(
    rig_no_worker: Rig, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[History, str]]:
    core = rig_no_worker.core
    made = await build(core, retailers=2)
    lone, _ = await chain(core, retailers=1, tag="22")  # a second distributor, no Telegram
    await chain(core, retailers=1, tag="33")  # a third, whose day was quiet
    await identities.link(
        core, party_id=made.distributor.id or 0, channel="telegram", external_id=str(CHAT),
        how="test",
    )  # fmt: skip
    day = datetime.now(ZoneInfo(ZONE)).date() - timedelta(days=1)
    clock = Clock(local(day, 6))
    patch_clocks(monkeypatch, clock)
    await day_of_trade(core, clock, made, day, seed=5, topups_n=12)
    await stock.deposit(
        core, actor=ADMIN, receiver_ref=PLATFORM, payer_ref=lone.msisdn, amount_minor=100_000,
        reference="lone-1",
    )  # fmt: skip
    for topup in made.topups:  # settled now, so the worker's sweeper has none to resolve
        if topup.state == TopupState.UNKNOWN:
            await finish(core, topup.topup_id, TopupState.FAILED, clock.now)
            topup.state = TopupState.FAILED
    monkeypatch.undo()  # the worker's own writes are dated now
    yield made, lone.msisdn


def _delivered(made: History) -> int:
    return sum(t.state == TopupState.DELIVERED for t in made.topups)


async def test_the_worker_sends_each_distributor_its_report_once(
    rig_no_worker: Rig,
    fake_telegram: FakeTelegram,  # noqa: F811
    yesterday_s_trade: tuple[History, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    made, lone = yesterday_s_trade
    settings = rig_no_worker.settings
    workers = [
        build_worker(settings, redis_url=settings.redis_url, handle_signals=False) for _ in range(2)
    ]
    tasks = [asyncio.create_task(run_worker(worker)) for worker in workers]
    try:
        await eventually(lambda: _both_sent(rig_no_worker), what="both reports marked sent")
    finally:
        for worker in workers:
            worker.handle_sig(signal.SIGUSR1)
        await asyncio.gather(*tasks)
    [photo] = fake_telegram.photos
    assert photo.chat_id == CHAT and photo.content.startswith(b"\x89PNG")
    width, height = int.from_bytes(photo.content[16:20]), int.from_bytes(photo.content[20:24])
    assert (width, height) == (900, 1500) and len(photo.content) > 20_000
    day = (datetime.now(ZoneInfo(ZONE)).date() - timedelta(days=1)).isoformat()
    assert photo.caption is not None
    assert photo.caption.startswith(f"AirGate {day}: {_delivered(made)} top-ups delivered")
    [sms] = await rig_no_worker.sms(lone)
    assert f"AirGate {day}: 0 top-ups delivered" in str(sms)
    assert "Deposits KES 1,000" in str(sms)
    assert await rig_no_worker.sms("+254733900000") == []  # the quiet one: nothing
    logged = "".join(capsys.readouterr())
    assert "report.sent" in logged  # the workers' logs: no party's number in them
    for number in (lone, made.distributor.msisdn, *(shop.msisdn for shop in made.shops)):
        assert number not in logged and number[4:] not in logged


async def _both_sent(rig: Rig) -> bool:
    async with rig.core.sessions() as session:
        rows = (await session.execute(select(ReportSend))).scalars().all()
    states = sorted((r.via, r.state) for r in rows)
    return states == [("", "quiet"), ("sms", "sent"), ("telegram", "sent")]


async def test_two_senders_at_once_and_again_send_once(
    rig_no_worker: Rig,
    fake_telegram: FakeTelegram,  # noqa: F811
    yesterday_s_trade: tuple[History, str],
) -> None:
    settings = rig_no_worker.settings
    sms = AfricasTalkingSms.from_settings(settings)
    telegram = TelegramSender(
        api_url=settings.telegram_api_url, token=settings.telegram_token.get_secret_value()
    )
    try:
        senders = [Morning(core=rig_no_worker.core, sms=sms, telegram=telegram) for _ in range(2)]
        sent = await asyncio.gather(*(s.send_due() for s in senders))
        assert sum(sent) == 2  # two distributors, each once (the third's day was quiet)
        assert await senders[0].send_due() == 0
        # Tomorrow morning, today's report: nobody traded today (the history is yesterday's).
        early = datetime.now(ZoneInfo(ZONE)).replace(hour=0, minute=30) + timedelta(days=1)
        assert await senders[1].send_due(now=early) == 0
    finally:
        await sms.close()
        await telegram.close()
    assert len(fake_telegram.photos) == 1
    async with rig_no_worker.core.sessions() as session:
        rows = (await session.execute(select(ReportSend))).scalars().all()
    assert sorted(r.state for r in rows) == ["quiet"] * 4 + ["sent"] * 2
