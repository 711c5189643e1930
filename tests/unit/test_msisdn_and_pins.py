from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import InvalidMsisdn, InvalidPin
from core.msisdn import masked, national, normalize
from core.security import Pin, PinHasher, load_pepper


@pytest.mark.parametrize(
    "raw", ["0788123456", "+254788123456", "254788123456", "00254788123456", " 0788 123-456 "]
)
def test_local_and_international_forms_normalise(raw: str) -> None:
    assert normalize(raw, country="KE") == "+254788123456"


@pytest.mark.parametrize("raw", ["", "123", "07881234567890", "hello", "+1", "0" * 100, "*#06#"])
def test_invalid_numbers_are_refused(raw: str) -> None:
    with pytest.raises(InvalidMsisdn):
        normalize(raw, country="KE")


def test_display_forms() -> None:
    assert national("+254788123456") == "0788123456"
    assert "123456" not in masked("+254788123456")


@pytest.mark.parametrize("digits", ["123", "1234567", "12a4", "١٢٣٤", ""])
def test_pin_format(digits: str) -> None:
    with pytest.raises(InvalidPin):
        Pin(digits)


def test_pin_hash_verifies_only_with_the_same_pepper_and_hides_the_pin() -> None:
    hasher = PinHasher(b"p" * 32)
    stored = hasher.hash(Pin("4321"))
    scheme, version, salt, digest = stored.split("$")
    assert (scheme, version) == ("hmac-sha256", "v1")
    # Salt and digest are hex of fixed sizes: no field is the PIN. (Not `"4321" not in stored`:
    # one random hex string in about a thousand contains those four digits.)
    assert len(salt) == 32 and len(digest) == 64 and int(salt + digest, 16) >= 0
    assert hasher.hash(Pin("4321")) != stored  # salted
    assert hasher.verify(Pin("4321"), stored)
    assert not hasher.verify(Pin("4322"), stored)
    assert not PinHasher(b"q" * 32).verify(Pin("4321"), stored)
    assert not hasher.verify(Pin("4321"), "garbage")
    assert str(Pin("4321")) == repr(Pin("4321")) == "Pin(****)"


def test_generated_pepper_is_kept_private(tmp_path: Path) -> None:
    first = load_pepper(configured="", var_dir=tmp_path)
    assert load_pepper(configured="", var_dir=tmp_path) == first
    assert (tmp_path / "pin_pepper").stat().st_mode & 0o077 == 0
    assert load_pepper(configured="from-secret-store", var_dir=tmp_path) == b"from-secret-store"
