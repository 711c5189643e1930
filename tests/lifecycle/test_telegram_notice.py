"""The retailer linked on Telegram hears there; a bot it blocked falls back to SMS.

A local fake Bot API (aiohttp) records every ``sendMessage``; the real worker calls it over HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from core.models import Notification, Party
from core.services import identities
from core.services.topups import confirm_topup
from tests.e2e.conftest import free_port
from tests.helpers import eventually
from tests.lifecycle.conftest import Rig
from tests.lifecycle.test_paths import _shop, number

TOKEN = "123456:TEST-token"
BLOCKED_CHAT = 666


class FakeBotApi:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()  # set on every recorded message

    async def send_message(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != TOKEN:
            return web.json_response({"ok": False, "error_code": 401}, status=401)
        body = await request.json()
        if body["chat_id"] == str(BLOCKED_CHAT):
            return web.json_response(
                {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked"},
                status=403,
            )
        self.sent.append(body)
        self.arrived.set()
        return web.json_response({"ok": True, "result": {"message_id": len(self.sent)}})


@pytest.fixture
async def bot_api() -> AsyncIterator[tuple[FakeBotApi, str]]:
    fake = FakeBotApi()
    app = web.Application()
    app.router.add_post("/bot{token}/sendMessage", fake.send_message)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield fake, f"http://127.0.0.1:{port}/bot"
    finally:
        await runner.cleanup()


@pytest.fixture
def rig_overrides(bot_api: tuple[FakeBotApi, str]) -> dict[str, Any]:
    return {"telegram_token": TOKEN, "telegram_api_url": bot_api[1]}


async def _all_sent(rig: Rig) -> list[Notification]:
    """Every notification, once all are marked sent (else empty)."""
    async with rig.core.sessions() as session:
        notes = list((await session.execute(select(Notification))).scalars())
    return notes if notes and all(n.state == "sent" for n in notes) else []


async def _link(rig: Rig, party: Party, chat_id: int) -> None:
    assert party.id is not None
    await identities.link(
        rig.core, party_id=party.id, channel="telegram", external_id=str(chat_id), how="test"
    )


async def test_a_linked_retailer_hears_on_telegram(
    rig: Rig, bot_api: tuple[FakeBotApi, str]
) -> None:
    fake, _url = bot_api
    shop = await _shop(rig)
    await _link(rig, shop, 4242)
    topup = await confirm_topup(
        rig.core, rig.queue, party_id=shop.id, msisdn=number(0), amount_minor=5_000,
        channel="test",
    )  # fmt: skip
    await rig.wait(topup.id)
    # The Telegram message and the receipt go out concurrently: wait for each on its own.
    await asyncio.wait_for(fake.arrived.wait(), timeout=30)
    await rig.wait_sms("+254712345670", timeout_s=30)  # the customer's receipt is an SMS
    await eventually(lambda: _all_sent(rig), what="every notification marked sent")
    assert await rig.sms(shop.msisdn) == []
    [message] = fake.sent
    assert message["chat_id"] == "4242" and topup.id in message["text"]


async def test_a_blocked_bot_falls_back_to_sms(rig: Rig, bot_api: tuple[FakeBotApi, str]) -> None:
    fake, _url = bot_api
    shop = await _shop(rig)
    await _link(rig, shop, BLOCKED_CHAT)
    topup = await confirm_topup(
        rig.core, rig.queue, party_id=shop.id, msisdn=number(1), amount_minor=5_000,
        channel="test",
    )  # fmt: skip
    await rig.wait(topup.id)
    [sms] = await rig.wait_sms(shop.msisdn)
    assert "FAILED" in sms["message"] and fake.sent == []
    # The mark is written just after the gateway answered.
    [note] = await eventually(lambda: _all_sent(rig), what="the notification marked sent")
    assert (note.via, note.recipient, note.state) == ("sms", shop.msisdn, "sent")
