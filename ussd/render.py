"""A ``Screen`` as USSD text: options as numbered lines, paginated to the gateway's limit.

Invariant: a rendered page never exceeds the limit: 182 characters when every character is in the
GSM 03.38 alphabet (its extension characters count twice), fewer when one is not and the whole
message goes as UCS-2 (80 by default). Options are never split: a page holds the screen's text and
as many whole option lines as fit before the footer (``98 More`` while more follow, ``0 Back`` on
later pages). Option numbers stay those of the whole list, so ``4`` means the same on every page.
A one-page screen where ``0`` goes back ends with ``0 Back 00 Menu`` when that still fits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.conversation.types import Nav, Screen

MORE, BACK = Nav.MORE, Nav.BACK
# Said under a one-page screen where 0 goes back and 00 to the main menu, when it fits.
NAV_HINT = f"{Nav.BACK} Back {Nav.MAIN} Menu"

# GSM 03.38 default alphabet, and its extension table (each extension character costs two).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")
# ASCII that GSM 03.38 lacks (control characters but LF, CR and FF; DEL; the backtick), and the
# ASCII it has only as escaped extension characters, which cost two.
_NON_GSM_ASCII = re.compile("[\x00-\x09\x0b\x0e-\x1f\x7f`]")
_ASCII_EXTENDED = "^{}\\[~]|\f"


@dataclass(frozen=True, slots=True)
class Limits:
    gsm7: int = 182
    ucs2: int = 80


def cost(text: str) -> tuple[int, bool]:
    """(length as the gateway counts it, whether it needs UCS-2)."""
    if text.isascii() and not _NON_GSM_ASCII.search(text):  # the usual case, no Python loop
        return len(text) + sum(text.count(c) for c in _ASCII_EXTENDED), False
    if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in text):
        return sum(2 if c in _GSM_EXTENDED else 1 for c in text), False
    return len(text), True  # UCS-2: one unit per character in the Basic Multilingual Plane


def limit_for(text: str, limits: Limits) -> int:
    return limits.ucs2 if cost(text)[1] else limits.gsm7


def fits(text: str, limits: Limits) -> bool:
    return cost(text)[0] <= limit_for(text, limits)


def cut(text: str, budget: int) -> str:
    """``text`` shortened with ``..`` to cost at most ``budget`` (screens are written to fit;
    this is the guard for a translation or a name that does not)."""
    if cost(text)[0] <= budget:
        return text
    while text and cost(text + "..")[0] > budget:
        text = text[:-1]
    return text.rstrip() + ".."


def pages(screen: Screen, limits: Limits) -> list[str]:
    """Every page of ``screen``; one page when it has no options or they all fit."""
    lines = [f"{i}. {option.label}" for i, option in enumerate(screen.options, start=1)]
    whole = "\n".join([screen.text, *lines])
    if fits(whole, limits):
        hinted = f"{whole}\n{NAV_HINT}"
        return [hinted if screen.nav and fits(hinted, limits) else whole]
    if not lines:
        return [cut(screen.text, limit_for(screen.text, limits))]
    footers = [f"{MORE} More", f"{BACK} Back"]
    # Room for the text beside one option line and both footers, whatever the page.
    budget = limit_for(whole, limits)
    lines = [cut(line, budget // 3) for line in lines]
    widest = max(cost(line)[0] for line in lines)
    text = cut(screen.text, budget - widest - sum(cost(f)[0] + 1 for f in footers) - 1)
    result: list[str] = []
    start = 0
    while start < len(lines):
        back = [footers[1]] if result else []
        end = start + 1  # one option always fits: the text was cut for it
        while end < len(lines):
            more = [footers[0]] if end + 1 < len(lines) else []
            if not fits("\n".join([text, *lines[start : end + 1], *more, *back]), limits):
                break
            end += 1
        more = [footers[0]] if end < len(lines) else []
        result.append("\n".join([text, *lines[start:end], *more, *back]))
        start = end
    return result
