"""User-facing text: one catalogue per language (``core/locales/{lang}.toml``), English first.

A translator edits one file. A key missing in a language falls back to English; a key missing in
English is a bug, and the catalogue test says which.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from typing import Any

LANGUAGES = ("en", "fr", "sw")
DEFAULT_LANGUAGE = "en"


@cache
def catalogue(language: str) -> dict[str, str]:
    """``{"topup.delivered": "…", …}``: the TOML's tables flattened to dotted keys."""
    text = resources.files("core").joinpath(f"locales/{language}.toml").read_text("utf-8")
    flat: dict[str, str] = {}

    def walk(prefix: str, table: dict[str, Any]) -> None:
        for key, value in table.items():
            if isinstance(value, dict):
                walk(f"{prefix}{key}.", value)
            else:
                flat[prefix + key] = str(value)

    walk("", tomllib.loads(text))
    return flat


def t(language: str, key: str, **fields: object) -> str:
    lang = language if language in LANGUAGES else DEFAULT_LANGUAGE
    template = catalogue(lang).get(key) or catalogue(DEFAULT_LANGUAGE)[key]
    return template.format(**fields)
