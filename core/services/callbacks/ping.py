"""A test callback: one signed ``ping`` POSTed at once, so an integrator can check a receiver and
its signature check before real outcomes arrive.

It is sent from the process that asks (``airgate callback ping``, the API), once, never retried
and not in the delivery log; its event id is new each time (``evt_ping_…``).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from core.context import Core
from core.errors import NotFound
from core.models import CallbackEndpoint
from core.models.types import utcnow
from core.services import audit
from core.services.audit import Actor
from core.services.callbacks.sender import client, post_signed


@dataclass(frozen=True, slots=True)
class Ping:
    event_id: str
    status: int | None  # the receiver's HTTP status; None: no answer
    error: str | None  # None: a 2xx

    @property
    def ok(self) -> bool:
        return self.error is None


async def ping(core: Core, *, actor: Actor, party_id: int) -> Ping:
    async with core.transaction() as session:
        endpoint = await session.get(CallbackEndpoint, party_id)
        if endpoint is None:
            raise NotFound(kind="callback endpoint", key=party_id)
        await audit.record(session, actor=actor, action="callback.ping", subject_party_id=party_id)
    event = f"evt_ping_{secrets.token_hex(8)}"
    created = utcnow().isoformat().replace("+00:00", "Z")
    body = json.dumps(
        {"id": event, "type": "ping", "created_at": created, "data": {}}, separators=(",", ":")
    ).encode()
    async with client(core.settings) as http:
        status, error = await post_signed(core, http, endpoint, event_id=event, body=body)
    return Ping(event_id=event, status=status, error=error)
