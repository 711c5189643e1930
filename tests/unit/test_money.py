from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.money import discounted_price, format_minor, parse_major


@pytest.mark.parametrize(
    ("face", "bps", "price"),
    [(10_000, 250, 9_750), (100, 0, 100), (100, 10_000, 0), (1, 5_000, 1), (3, 5_000, 2)],
)
def test_discounted_price_rounds_half_up(face: int, bps: int, price: int) -> None:
    assert discounted_price(face, bps) == price


@given(st.integers(0, 10**12), st.integers(0, 10_000))
def test_price_never_exceeds_face_nor_goes_negative(face: int, bps: int) -> None:
    assert 0 <= discounted_price(face, bps) <= face


@pytest.mark.parametrize(
    ("text", "minor"), [("500", 50_000), ("1,500.5", 150_050), ("0.01", 1), (" 12.30 ", 1_230)]
)
def test_parse_major(text: str, minor: int) -> None:
    assert parse_major(text) == minor


@pytest.mark.parametrize("text", ["", "-5", "1.234", "abc", "1e3", "５00", "1" * 13])
def test_parse_major_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_major(text)


def test_format_minor() -> None:
    assert format_minor(150_050, "KES") == "KES 1,500.50"
    assert format_minor(50_000) == "500"
    assert format_minor(-1) == "-0.01"
