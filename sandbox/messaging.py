"""The SMS sink, Africa's Talking's shape: ``POST /version1/messaging`` (form, ``apiKey`` header).

Every recipient is recorded, accepted or not, so tests and the demo can read what a number was
sent at ``/sandbox/sms``. Nothing is delivered anywhere. The answer's Content-Type is exactly
``application/json``, no charset, as Africa's Talking's: the official Python SDK parses JSON only
then. Its other fields (``bulkSMSMode``, ``enqueue``) are accepted and change nothing here.
"""

from __future__ import annotations

import json
import math
import secrets

from aiohttp import web

from sandbox.operators import international
from sandbox.store import STORE, SmsRecord
from sandbox.wire import now

COST_PER_PART_MINOR = 80  # KES 0.80 per 160-character part
SINGLE_PART_CHARS = 160
MULTI_PART_CHARS = 153  # each part of a long message loses 7 characters to the header


async def send(request: web.Request) -> web.Response:
    store = request.app[STORE]
    form = await request.post()
    username, api_key = form.get("username"), request.headers.get("apiKey")
    if (username, api_key) != (store.config.sms_username, store.config.sms_api_key):
        return web.Response(status=401, text="The supplied authentication is invalid")
    to, message = form.get("to"), form.get("message")
    for name, value in (("to", to), ("message", message)):
        if not isinstance(value, str) or not value.strip():
            return web.Response(status=400, text=f"Request is missing required form field '{name}'")
    assert isinstance(to, str) and isinstance(message, str)
    sender = form.get("from")
    parts = _parts(message)
    at = now()
    recipients = []
    for raw in (n.strip() for n in to.split(",") if n.strip()):
        e164 = international(raw)
        record = SmsRecord(
            message_id=f"ATXid_{secrets.token_hex(16)}" if e164 else "None",
            number=e164 or raw,
            message=message,
            sender=sender if isinstance(sender, str) else "",
            status_code=101 if e164 else 403,
            status="Success" if e164 else "InvalidPhoneNumber",
            cost=_kes(parts * COST_PER_PART_MINOR if e164 else 0),
            at=at,
        )
        store.add_sms(record)
        recipients.append(
            {
                "statusCode": record.status_code,
                "number": record.number,
                "status": record.status,
                "cost": record.cost,
                "messageId": record.message_id,
            }
        )
    sent = sum(1 for r in recipients if r["statusCode"] == 101)
    total = _kes(sent * parts * COST_PER_PART_MINOR)
    summary = f"Sent to {sent}/{len(recipients)} Total Cost: {total}"
    body = {"SMSMessageData": {"Message": summary, "Recipients": recipients}}
    return web.Response(body=json.dumps(body).encode(), status=201, content_type="application/json")


def _parts(message: str) -> int:
    if len(message) <= SINGLE_PART_CHARS:
        return 1
    return math.ceil(len(message) / MULTI_PART_CHARS)


def _kes(amount_minor: int) -> str:
    return f"KES {amount_minor / 100:.4f}"
