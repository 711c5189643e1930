"""core.logging: tracebacks without locals, libraries at WARNING, every line redacted."""

from __future__ import annotations

import json
import logging
import pathlib

import pytest

from core.logging import configure, get_logger, write_to

SECRET = "sec-Wq4Hv8Kp2Zr6"
PIN = "7391"


def _fail(text: str, settings_like: dict[str, str]) -> None:
    raise RuntimeError(f"no such party {settings_like['who']}")


@pytest.mark.parametrize("as_json", [False, True])
def test_a_library_s_exception_has_its_traceback_without_locals(
    as_json: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(level="DEBUG", json=as_json, secrets=[SECRET])
    library = logging.getLogger("aiohttp.server")
    try:
        _fail(PIN, {"token": SECRET, "who": "+254788123456"})
    except RuntimeError:
        library.exception("Error handling request from %s", "127.0.0.1")
        get_logger("ours").exception("USSD hop failed")
    logging.getLogger("telegram.ext").debug("Calling Bot API endpoint with %s", {"pin": PIN})
    out, err = capsys.readouterr()
    for stream in (out, err):
        assert "Traceback (most recent call last)" in stream and "_fail" in stream
        assert PIN not in stream and SECRET not in stream and "788123456" not in stream
        assert "+254788****56" in stream  # the message's number, masked
    if as_json:
        lines = [json.loads(line) for stream in (out, err) for line in stream.splitlines()]
        assert all("Traceback" in line["exception"] for line in lines)
    assert "Calling Bot API" not in err  # below WARNING: a library's line is dropped


def test_our_debug_lines_show_at_debug(capsys: pytest.CaptureFixture[str]) -> None:
    configure(level="DEBUG", json=False)
    get_logger("ours").debug("a detail", amount_minor=500)
    assert "a detail" in capsys.readouterr().out


def test_a_logger_used_before_follows_a_new_configuration(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    """A module's logger is made once at import and used at once; a later configure() (another
    level, as the tests and `airgate demo` do) and write_to() (`airgate phone`) still reach it."""
    early = get_logger("early")
    configure(level="WARNING", json=False)
    early.info("before, below the level")
    configure(level="DEBUG", json=True)
    early.debug("after, at debug")
    assert "after, at debug" in capsys.readouterr().out
    with (tmp_path / "phone.log").open("w", encoding="utf-8") as stream:
        write_to(stream)
        early.warning("to the file")
    assert "to the file" in (tmp_path / "phone.log").read_text(encoding="utf-8")
    assert "to the file" not in capsys.readouterr().out
