"""Africa's Talking's path to the last input, the journey of issue 4 included."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.conversation.sessions import PathKeeper, SeenPath
from ussd.dialects.africastalking import last_input, reply

PATHS = PathKeeper(b"k" * 32)


def kept(path: str | None) -> SeenPath | None:
    """The path as a session keeps it (length and keyed digest) and reads it back."""
    return None if path is None else PATHS.seen(PATHS.keep(path))


def test_the_cancelled_airtime_journey_yields_one_input_per_hop() -> None:
    hops = ["", "1", "1*0788123456", "1*0788123456*500", "1*0788123456*500*0"]
    seen, inputs = None, []
    for text in hops:
        inputs.append(last_input(text, previous=kept(seen)))
        seen = text
    assert inputs == ["", "1", "0788123456", "500", "0"]


def test_an_input_with_a_star_is_kept_whole() -> None:
    assert last_input("1*0788123456**144#", previous=kept("1*0788123456")) == "*144#"
    assert last_input("*1#", previous=kept("")) == "*1#"  # the first input after the empty hop


def test_without_a_kept_path_the_last_part_is_taken() -> None:
    assert last_input("1*0788123456*500", previous=kept(None)) == "500"


def test_a_retried_hop_is_no_new_input() -> None:
    assert last_input("1*0788123456", previous=kept("1*0788123456")) == ""


@given(inputs=st.lists(st.text(max_size=12).filter(lambda s: s != ""), min_size=1, max_size=8))
def test_any_inputs_come_back_as_typed(inputs: list[str]) -> None:
    path = seen = ""  # the session's first hop: empty text, kept as the path
    for typed in inputs:
        path = typed if not path else f"{path}*{typed}"
        assert last_input(path, previous=kept(seen)) == typed
        seen = path


def test_the_kept_path_holds_no_input() -> None:
    stored = PATHS.keep("1*0788123456*500*7391")
    assert "7391" not in stored and "0788123456" not in stored
    assert stored.startswith("21:")
    assert PATHS.seen("1*0788123456") is None  # a raw path kept before: read as none kept


def test_a_path_that_only_has_the_kept_length_is_not_taken_for_it() -> None:
    # Another path of the same length: its last part is the input, as without a kept path.
    assert last_input("2*0788123456*5", previous=kept("1*0788123456")) == "5"


def test_reply_prefixes() -> None:
    assert reply("Menu", final=False) == "CON Menu" and reply("Bye", final=True) == "END Bye"
