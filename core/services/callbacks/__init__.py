"""Outcome callbacks: a party's endpoint, the outbox of deliveries, signing, the SSRF guard.

- endpoints.py: register/replace, show, rotate the secret, remove; the delivery log, resend;
- outbox.py: the rows a final top-up owes (written in its transaction), the body, the sweep;
- sender.py: one POST attempt and what follows (delivered, retry with back-off, given up);
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

__all__ = [
    "Endpoint",
    "Registered",
    "deliveries",
    "delivery_dict",
    "get",
    "register",
    "remove",
    "resend",
    "rotate_secret",
]
