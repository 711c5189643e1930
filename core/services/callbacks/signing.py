"""Signing a callback: ``AirGate-Signature: v1=<hex HMAC-SHA256(secret, "timestamp.body")>``.

Invariant: no signing secret is stored. A party's secret is derived from its endpoint's random
``secret_seed`` and the server's pepper (``PinHasher.subkey``), so it can be shown once at
registration and re-derived to sign, while a copy of the database alone cannot sign. It is
masked in every log line of the process that derives it (core.logging.hide).

During a rotation's grace period the previous secret signs too: the header then carries two
``v1=`` values, newest first, and a receiver accepts the request if either matches.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from core.logging import hide
from core.security import PinHasher

PREFIX = "whsec_"
VERSION = "v1"

EVENT_ID = "AirGate-Event-Id"
TIMESTAMP = "AirGate-Timestamp"
SIGNATURE = "AirGate-Signature"


def secret_for(pins: PinHasher, seed: str) -> str:
    """The signing secret of ``seed`` (``whsec_`` and 64 hex digits)."""
    digest = hmac.new(pins.subkey("callback-signing"), seed.encode(), hashlib.sha256).hexdigest()
    secret = PREFIX + digest
    hide(secret)
    return secret


def signature(secret: str, *, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def headers(
    secrets: Sequence[str], *, event_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The headers of one POST: ``secrets`` newest first (two during a rotation's grace)."""
    signed = ",".join(f"{VERSION}={signature(s, timestamp=timestamp, body=body)}" for s in secrets)
    return {
        "Content-Type": "application/json",
        "User-Agent": "AirGate-Callbacks/1",
        EVENT_ID: event_id,
        TIMESTAMP: str(timestamp),
        SIGNATURE: signed,
    }
