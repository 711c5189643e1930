"""Outcome callbacks: a party's endpoint, the outbox of deliveries, signing, the SSRF guard.

- endpoints.py: register/replace, show, rotate the secret, remove; the delivery log, resend;
- outbox.py: the rows a final top-up owes (written in its transaction), the body, the sweep;
- sender.py: one POST attempt and what follows (delivered, retry with back-off, given up);
- ping.py: a test ``ping`` sent at once, to check a receiver;
- signing.py: the derived secret and the ``AirGate-Signature`` header;
- guard.py: where a callback may go (public https only, unless the settings allow more).

The receiver's side (headers, verification, replay window) is documented in docs/API.md.
"""

from core.services.callbacks.endpoints import (
    Endpoint,
    Registered,
    deliveries,
    delivery_dict,
    get,
    register,
    remove,
    resend,
    rotate_secret,
)
from core.services.callbacks.ping import Ping, ping

__all__ = [
    "Endpoint",
    "Ping",
    "Registered",
    "deliveries",
    "delivery_dict",
    "get",
    "ping",
    "register",
    "remove",
    "resend",
    "rotate_secret",
]
