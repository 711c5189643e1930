"""AfricasTalkingSms against the sandbox's SMS sink, and against broken gateways."""

from __future__ import annotations

import pytest
from aiohttp import web

from core.errors import ProviderRejected, ProviderUnavailable
from core.providers.sms import AfricasTalkingSms
from tests.e2e.conftest import free_port
from tests.providers.conftest import Sandbox, serve


async def test_an_sms_is_accepted_and_visible_in_the_sink(
    sandbox: Sandbox, sms: AfricasTalkingSms
) -> None:
    receipts = await sms.send(to=["+254712345678", "+254733123456"], message="KES 50 delivered")
    assert [(r.number, r.accepted, r.status) for r in receipts] == [
        ("+254712345678", True, "Success"),
        ("+254733123456", True, "Success"),
    ]
    assert all(r.message_id and r.message_id.startswith("ATXid_") for r in receipts)
    [seen] = await sandbox.sms("+254712345678")
    assert seen["message"] == "KES 50 delivered" and seen["messageId"] == receipts[0].message_id
    await sms.send(to=["+254712345678"], message="second")
    assert [m["message"] for m in await sandbox.sms("+254712345678")] == [
        "second",
        "KES 50 delivered",
    ]  # newest first
    assert (await sandbox.stats())["sms"] == 3


async def test_an_invalid_number_is_not_accepted(sandbox: Sandbox, sms: AfricasTalkingSms) -> None:
    [receipt] = await sms.send(to=["+25412"], message="hello")
    assert (receipt.accepted, receipt.status, receipt.message_id) == (
        False,
        "InvalidPhoneNumber",
        None,
    )


async def test_no_recipients_sends_nothing(sandbox: Sandbox, sms: AfricasTalkingSms) -> None:
    assert await sms.send(to=[], message="hello") == []
    assert (await sandbox.stats())["sms"] == 0


async def test_a_wrong_api_key_is_rejected(sandbox: Sandbox) -> None:
    sender = AfricasTalkingSms(base_url=sandbox.url, username="sandbox", api_key="wrong")
    try:
        with pytest.raises(ProviderRejected, match="HTTP 401"):
            await sender.send(to=["+254712345678"], message="hello")
    finally:
        await sender.close()
    assert await sandbox.sms() == []


async def test_an_unreachable_gateway_is_unavailable() -> None:
    sender = AfricasTalkingSms(
        base_url=f"http://127.0.0.1:{free_port()}", username="u", api_key="k"
    )
    try:
        with pytest.raises(ProviderUnavailable):
            await sender.send(to=["+254712345678"], message="hello")
    finally:
        await sender.close()


@pytest.mark.parametrize(
    ("status", "text", "error"),
    [
        (500, "boom", ProviderUnavailable),
        (201, "not json", ProviderUnavailable),
        (201, '{"SMSMessageData": {}}', ProviderUnavailable),
        (400, "Request is missing required form field 'to'", ProviderRejected),
    ],
)
async def test_gateway_answers_map_onto_the_error_tree(
    status: int, text: str, error: type[Exception]
) -> None:
    async def gateway(_request: web.Request) -> web.Response:
        return web.Response(status=status, text=text)

    app = web.Application()
    app.router.add_post("/version1/messaging", gateway)
    async with serve(app) as url:
        sender = AfricasTalkingSms(base_url=url, username="u", api_key="k")
        try:
            with pytest.raises(error):
                await sender.send(to=["+254712345678"], message="hello")
        finally:
            await sender.close()
