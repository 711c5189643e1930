"""The webhook answers every body: an update python-telegram-bot cannot read is a 400, never a 500
(the three found by fuzzing, then a hypothesis-driven fuzz of updates over the real app)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from tests.channels.conftest import HOOK_SECRET, Telegram

USER = 4242
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": HOOK_SECRET, "Content-Type": "application/json"}


async def _post_raw(telegram: Telegram, body: bytes) -> int:
    response = await telegram.client.post("/telegram/webhook", data=body, headers=HEADERS)
    return response.status


async def test_the_three_unreadable_updates_are_400(telegram: Telegram) -> None:
    message = telegram.fake.user_message(USER, "hi")
    huge_date = json.loads(json.dumps(message))
    huge_date["message"]["date"] = 2**64
    assert await telegram.send({"update_id": 1, "message": "x"}) == 400
    assert await telegram.send(huge_date) == 400
    deep = b'{"update_id": 2, "message": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001
    assert await _post_raw(telegram, deep) == 400
    assert await telegram.send(telegram.fake.user_message(USER, "hi")) == 200  # still serving


_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)


def _nested(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # A function, not a lambda: hypothesis reads a lambda's source to see that it recurses, and
    # that read failed for this one in some runs (a HypothesisDeprecationWarning, an error here).
    return st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)


_VALUE = st.recursive(_LEAF, _nested, max_leaves=8)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _mutated(template: dict[str, Any], pick: int, value: Any) -> dict[str, Any]:
    update = json.loads(json.dumps(template))
    paths = _paths(update)
    path = paths[pick % len(paths)]
    target = update
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return update


async def test_fuzzed_updates_are_answered_200_or_400_never_500(telegram: Telegram) -> None:
    fake = telegram.fake
    templates = [
        fake.user_message(USER, "hi"),
        fake.user_command(USER, "/start"),
        fake.user_contact(USER, "+254700000001"),
        fake.user_command(USER, "/balance"),
    ]
    updates: list[dict[str, Any]] = []

    @settings(
        max_examples=400, database=None, deadline=None, suppress_health_check=list(HealthCheck)
    )
    @given(st.integers(0, len(templates) - 1), st.integers(0, 10_000), _VALUE)
    def collect(which: int, pick: int, value: Any) -> None:
        updates.append(_mutated(templates[which], pick, value))

    collect()
    answered = {}
    for number, update in enumerate(updates):
        update["update_id"] = 10_000 + number if isinstance(update, dict) else number
        status = await telegram.send(update)
        answered[status] = answered.get(status, 0) + 1
        assert status in (200, 400), (status, json.dumps(update)[:300])
    assert answered.get(400, 0) > 0  # the fuzz did reach what cannot be read


async def test_a_refused_update_is_logged_once_without_its_body(telegram: Telegram) -> None:
    with capture_logs() as logs:
        assert await telegram.send({"update_id": 3, "message": "secret-text-0788123456"}) == 400
    refused = [entry for entry in logs if entry["event"] == "Telegram update refused"]
    assert len(refused) == 1, logs
    assert refused[0]["error"] == "AttributeError"
    assert "0788123456" not in repr(logs)
