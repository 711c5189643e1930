"""USSD pages: never over the limit, never an option split, every option once, in order."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from core.conversation.types import Option, Screen
from ussd.render import Limits, cost, fits, pages

LIMITS = Limits()
words = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("abc {}[]€é"),
    max_size=60,
)


def test_a_short_menu_is_one_page() -> None:
    screen = Screen("AirGate", (Option("Airtime top-up", "1"), Option("Data bundle", "2")))
    assert pages(screen, LIMITS) == ["AirGate\n1. Airtime top-up\n2. Data bundle"]


def test_cost_counts_gsm_extension_twice_and_ucs2_by_character() -> None:
    assert cost("KES 500") == (7, False)
    assert cost("{€}") == (6, False)
    assert cost("Tsh 500 ₹") == (9, True)


def test_a_long_list_pages_with_more_and_back() -> None:
    bundles = tuple(Option(f"Bundle number {i} 1GB valid 30 days", str(i)) for i in range(1, 13))
    result = pages(Screen("Choose a bundle", bundles), LIMITS)
    assert len(result) > 1
    assert result[0].endswith("98 More") and "0 Back" not in result[0]
    assert result[-1].endswith("0 Back") and "98 More" not in result[-1]
    assert all(len(page) <= 182 for page in result)
    assert "12. Bundle number 12" in result[-1]


def test_a_swahili_or_french_text_with_one_ucs2_character_uses_the_80_limit() -> None:
    screen = Screen("Chagua kifurushi ✓", tuple(Option(f"Kifurushi {i}", str(i)) for i in range(9)))
    result = pages(screen, LIMITS)
    assert all(len(page) <= 80 for page in result) and len(result) > 1


@settings(max_examples=300, deadline=None)
@given(
    text=words,
    labels=st.lists(words, max_size=25),
    gsm7=st.integers(min_value=60, max_value=182),
    ucs2=st.integers(min_value=40, max_value=80),
)
def test_every_page_fits_and_every_option_appears_once_in_order(
    text: str, labels: list[str], gsm7: int, ucs2: int
) -> None:
    limits = Limits(gsm7=gsm7, ucs2=ucs2)
    options = tuple(Option(label, str(i)) for i, label in enumerate(labels, start=1))
    result = pages(Screen(text, options), limits)
    assert all(fits(page, limits) for page in result), result
    numbers = [
        int(m.group(1))
        for page in result
        for m in re.finditer(r"^(\d+)\. ", page, flags=re.MULTILINE)
        if m.group(1) not in ("98",)
    ]
    # Option lines are found by their number at a line start; a label may itself contain such a
    # pattern, so check the ordered, complete subsequence of the real numbers.
    expected = list(range(1, len(options) + 1))
    it = iter(numbers)
    assert all(n in it for n in expected), (numbers, result)


def test_the_ascii_fast_path_counts_as_the_alphabet_does() -> None:
    from ussd.render import _GSM_BASIC, _GSM_EXTENDED

    for code in range(128):
        text = chr(code) + "a"
        if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in text):
            expected = (sum(2 if c in _GSM_EXTENDED else 1 for c in text), False)
        else:
            expected = (len(text), True)
        assert cost(text) == expected, repr(chr(code))
