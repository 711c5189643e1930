"""The official ``africastalking`` Python SDK pointed at the sandbox's SMS sink.

The SDK parses an answer as JSON only when its Content-Type is exactly ``application/json``
(``Service._make_request``), sends ``bulkSMSMode=1`` and refuses numbers without ``+``; the sink
must answer it as Africa's Talking does. Its base URL is a private attribute, so the test sets it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from africastalking.SMS import SMSService  # type: ignore[import-untyped]

from tests.providers.conftest import Sandbox


def sdk(sandbox: Sandbox) -> Any:
    service = SMSService("sandbox", "sandbox")
    service._baseUrl = f"{sandbox.url}/version1"  # the SDK's own base + "/version1"
    return service


async def test_the_official_sdk_reads_the_sinks_json_answer(sandbox: Sandbox) -> None:
    service = sdk(sandbox)
    answer = await asyncio.to_thread(
        service.send, "KES 50 delivered", ["+254712345678", "+254733123456"], "AIRGATE"
    )
    assert isinstance(answer, dict), answer  # raw text when the Content-Type is not exact
    recipients = answer["SMSMessageData"]["Recipients"]
    assert [(r["number"], r["statusCode"], r["status"]) for r in recipients] == [
        ("+254712345678", 101, "Success"),
        ("+254733123456", 101, "Success"),
    ]
    assert answer["SMSMessageData"]["Message"] == "Sent to 2/2 Total Cost: KES 1.6000"
    [seen] = await sandbox.sms("+254712345678")
    assert (seen["message"], seen["from"]) == ("KES 50 delivered", "AIRGATE")


async def test_an_invalid_number_comes_back_as_json_too(sandbox: Sandbox) -> None:
    service = sdk(sandbox)
    answer = await asyncio.to_thread(service.send, "hello", ["+25412"], None, True)  # enqueue=1
    assert isinstance(answer, dict), answer
    [recipient] = answer["SMSMessageData"]["Recipients"]
    assert (recipient["statusCode"], recipient["status"]) == (403, "InvalidPhoneNumber")
