"""``airgate phone`` against a real ``airgate demo``, replies piped in as a script would."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import TEST_PEPPER
from tests.e2e.conftest import AIRGATE, free_port
from tests.e2e.test_demo import _sandbox_env, _start_demo, _stop, _wait_for

# Hops the menu → 1 (airtime) → a number → an amount → 0 on the confirmation; then quit.
CANCELLED = "1\n0788123456\n500\n0\nq\n"


@dataclass(frozen=True)
class Demo:
    env: dict[str, str]
    cwd: Path

    def phone(self, *args: str, stdin: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [AIRGATE, "phone", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.cwd,
            timeout=30,
        )
        assert "Traceback" not in result.stderr
        return result


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRGATE_")}
    env.update(
        AIRGATE_VAR_DIR=str(root / "var"),
        AIRGATE_PIN_PEPPER=TEST_PEPPER,
        AIRGATE_HTTP_PORT=str(free_port()),
        COLUMNS="200",
    )
    _sandbox_env(env)
    return env


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """One ``airgate demo`` for the module: each test dials it as a different retailer."""
    root = tmp_path_factory.mktemp("phone")
    env = _env(root)
    process = _start_demo(env, root)
    try:
        _wait_for(f"http://127.0.0.1:{env['AIRGATE_HTTP_PORT']}/health", process)
        yield Demo(env, root)
    finally:
        _stop(process)


def screens(stdout: str) -> list[str]:
    """The text of each boxed screen, its lines joined by spaces."""
    shown: list[str] = []
    for line in stdout.splitlines():
        if line.startswith("╭"):
            shown.append("")
        elif line.startswith("│"):
            shown[-1] = f"{shown[-1]} {line.strip('│ ')}".strip()
    return shown


def _assert_cancelled_journey(stdout: str) -> None:
    menu, number, amount, confirm, cancelled = screens(stdout)
    assert "1. Airtime top-up" in menu
    assert "phone number" in number
    assert "Airtel 0788123456" in amount
    assert "KES 500" in confirm and "0788123456" in confirm and "PIN" in confirm
    assert "Cancelled" in cancelled
    assert "reply, or Enter to hang up" in stdout and "Enter to dial again, q to quit" in stdout
    assert "> 0788123456" in stdout  # piped replies are shown, so the transcript reads


def test_the_cancelled_airtime_journey(demo: Demo) -> None:
    result = demo.phone("+254700000001", stdin=CANCELLED)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("+254700000001 dials *384*123#\n")
    _assert_cancelled_journey(result.stdout)
    assert result.stderr == ""


def test_an_empty_reply_hangs_up_and_a_redial_carries_on(demo: Demo) -> None:
    result = demo.phone("0700000002", stdin="1\n0788123456\n\n\n1\n500\n0\n")
    assert result.returncode == 0, result.stderr
    *_, amount, resume, again, confirm, cancelled = screens(result.stdout)
    assert "hung up" in result.stdout and result.stdout.count("dials *384*123#") == 2
    assert "Airtel 0788123456" in amount and "1. Continue" in resume
    assert again == amount and "KES 500" in confirm and "Cancelled" in cancelled


def test_a_wrong_token_says_so_in_one_line(demo: Demo) -> None:
    result = demo.phone("+254700000001", "--token", "not-the-token", stdin=CANCELLED)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("airgate: ") and result.stderr.count("\n") == 1
    assert "refused the token (403)" in result.stderr and "--token" in result.stderr


def test_with_no_server_it_says_what_to_start(tmp_path: Path) -> None:
    env = _env(tmp_path)  # nothing listens on its AIRGATE_HTTP_PORT: the default --url
    result = Demo(env, tmp_path).phone("+254700000001", stdin=CANCELLED)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"airgate: nothing answers at http://127.0.0.1:{env['AIRGATE_HTTP_PORT']}: "
        "start `airgate serve` or `airgate demo` first\n"
    )


def test_demo_with_a_phone_hands_it_the_terminal_and_stops_when_it_quits(tmp_path: Path) -> None:
    env = _env(tmp_path)
    result = subprocess.run(
        [AIRGATE, "demo", "--retailers", "2", "--phone", "+254700000001"],
        input=CANCELLED,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    banner, _, phone = result.stdout.partition("+254700000001 dials *384*123#\n")
    assert f"{AIRGATE} phone +254700000001   # the USSD menu, PIN 1234" in banner
    _assert_cancelled_journey(phone)
    # The logs went to the file, not between the screens.
    log = (tmp_path / "var" / "demo.log").read_text()
    assert "worker.ready" in log and "worker.stopping" in log
    assert "worker." not in result.stdout + result.stderr
    assert not (tmp_path / "var" / "redis" / "redis.sock").exists()  # the demo stopped its Redis
