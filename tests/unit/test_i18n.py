"""The text catalogues: every language has every English key, with the same placeholders."""

from __future__ import annotations

import string

import pytest

from core.i18n import LANGUAGES, catalogue, t


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@pytest.mark.parametrize("language", [lang for lang in LANGUAGES if lang != "en"])
def test_every_language_has_every_key_with_the_same_placeholders(language: str) -> None:
    english, other = catalogue("en"), catalogue(language)
    assert set(other) == set(english), set(english) ^ set(other)
    for key, template in english.items():
        assert _fields(other[key]) == _fields(template), key


@pytest.mark.parametrize("language", LANGUAGES)
def test_texts_are_plain_gsm_friendly_ascii(language: str) -> None:
    """Kenyan telcos render plain GSM-7 best: no accents or typographic quotes in texts."""
    for key, template in catalogue(language).items():
        assert template.isascii(), f"{language}:{key}"


def test_unknown_language_falls_back_to_english() -> None:
    assert t("xx", "support.yes") == t("en", "support.yes") == "Yes, open a case"
