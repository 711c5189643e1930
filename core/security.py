"""PIN hashing and checking.

A PIN has 10^4 to 10^6 values, so no hash, however slow, survives an offline guess of all of them:
what protects a stolen database is a **pepper**, a secret kept outside the database. We store
``hmac-sha256$v1$<salt>$<digest>`` where digest = HMAC-SHA256(pepper, salt || pin). Guessing online
is stopped by the lockout after ``pin_max_attempts`` wrong tries (core/services/parties.py). The
check is microseconds, so it costs nothing on a USSD hop. See docs/SECURITY.md.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from core.errors import InvalidPin
from core.logging import hide

SCHEME = "hmac-sha256"
PEPPER_VERSION = "v1"
SALT_BYTES = 16


class Pin:
    """A PIN that never shows itself: ``repr``/``str`` print ``Pin(****)``."""

    __slots__ = ("_digits",)

    def __init__(self, digits: str) -> None:
        digits = digits.strip()
        if not (4 <= len(digits) <= 6 and digits.isascii() and digits.isdigit()):
            raise InvalidPin()
        self._digits = digits

    def reveal(self) -> str:
        return self._digits

    def __repr__(self) -> str:
        return "Pin(****)"

    __str__ = __repr__


class PinHasher:
    def __init__(self, pepper: bytes) -> None:
        if len(pepper) < 16:
            raise ValueError("the PIN pepper must be at least 16 bytes")
        self._pepper = pepper

    def hash(self, pin: Pin) -> str:
        salt = secrets.token_bytes(SALT_BYTES)
        return f"{SCHEME}${PEPPER_VERSION}${salt.hex()}${self._digest(salt, pin)}"

    def verify(self, pin: Pin, stored: str) -> bool:
        try:
            scheme, _version, salt_hex, digest = stored.split("$")
            salt = bytes.fromhex(salt_hex)
        except ValueError:
            return False
        return scheme == SCHEME and hmac.compare_digest(digest, self._digest(salt, pin))

    def subkey(self, purpose: str) -> bytes:
        """A key for ``purpose`` derived from the pepper: as secret as the pepper, without a
        setting of its own (the keyed digest of Africa's Talking's path, which holds PINs)."""
        return hmac.new(self._pepper, f"airgate:{purpose}".encode(), hashlib.sha256).digest()

    def _digest(self, salt: bytes, pin: Pin) -> str:
        return hmac.new(self._pepper, salt + pin.reveal().encode(), hashlib.sha256).hexdigest()


def load_pepper(*, configured: str, var_dir: Path) -> bytes:
    """The configured pepper, or one generated once and kept in ``var_dir/pin_pepper`` (0600)."""
    return kept_secret(
        configured=configured, path=var_dir / "pin_pepper", make=secrets.token_hex
    ).encode()


def kept_secret(*, configured: str, path: Path, make: Callable[[int], str]) -> str:
    """``configured`` if set, else a secret made once (``make(32)``) and kept in ``path`` (0600):
    what the embedded defaults use for the PIN pepper and the webhook secrets. Safe when two
    processes start at once: one creates the file, the other reads it."""
    if configured:
        return configured
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            fd = None  # the other process made it
        if fd is not None:
            with os.fdopen(fd, "w") as handle:
                handle.write(make(32))
    secret = path.read_text().strip()
    hide(secret)  # masked in every log line, as the configured secrets are
    return secret
