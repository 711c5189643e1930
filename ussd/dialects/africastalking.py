"""Africa's Talking: ``text`` is the whole path of the session's inputs joined by ``*``.

The engine wants the last input only. An input may itself contain ``*`` (``*144#`` typed as a
number, a PIN pad habit), so splitting the path on ``*`` is wrong: the session keeps the last path
it saw, and the new input is whatever follows it (PROTOCOLS.md). Without a kept path (the first
hop, or a session that expired) the input is the last ``*``-separated part, which is all a gateway
that restarted the session can give.
"""

from __future__ import annotations

CONTINUE, END = "CON", "END"


def last_input(text: str, *, previous_path: str | None) -> str:
    """The newest input in ``text`` given the path seen on the previous hop."""
    if not text:
        return ""
    if previous_path == "":  # the session's first hop had no input: all of this is one input
        return text
    if previous_path is not None:
        prefix = previous_path + "*"
        if text.startswith(prefix):
            return text[len(prefix) :]
        if text == previous_path:  # a gateway retry of the same hop
            return ""
    return text.rsplit("*", 1)[-1]


def reply(page: str, *, final: bool) -> str:
    """The ``text/plain`` body: ``CON`` keeps the session open, ``END`` closes it."""
    return f"{END if final else CONTINUE} {page}"
