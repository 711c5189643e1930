"""Africa's Talking's path to the last input, the journey of issue 4 included."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ussd.dialects.africastalking import last_input, reply


def test_the_cancelled_airtime_journey_yields_one_input_per_hop() -> None:
    hops = ["", "1", "1*0788123456", "1*0788123456*500", "1*0788123456*500*0"]
    seen, inputs = None, []
    for text in hops:
        inputs.append(last_input(text, previous_path=seen))
        seen = text
    assert inputs == ["", "1", "0788123456", "500", "0"]


def test_an_input_with_a_star_is_kept_whole() -> None:
    assert last_input("1*0788123456**144#", previous_path="1*0788123456") == "*144#"
    assert last_input("*1#", previous_path="") == "*1#"  # the first input after the empty hop


def test_without_a_kept_path_the_last_part_is_taken() -> None:
    assert last_input("1*0788123456*500", previous_path=None) == "500"


def test_a_retried_hop_is_no_new_input() -> None:
    assert last_input("1*0788123456", previous_path="1*0788123456") == ""


@given(inputs=st.lists(st.text(max_size=12).filter(lambda s: s != ""), min_size=1, max_size=8))
def test_any_inputs_come_back_as_typed(inputs: list[str]) -> None:
    path = seen = ""  # the session's first hop: empty text, kept as the path
    for typed in inputs:
        path = typed if not path else f"{path}*{typed}"
        assert last_input(path, previous_path=seen) == typed
        seen = path


def test_reply_prefixes() -> None:
    assert reply("Menu", final=False) == "CON Menu" and reply("Bye", final=True) == "END Bye"
