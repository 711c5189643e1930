"""``airgate serve --processes N`` as real processes over real sockets: both children answer on
the one port, /metrics counts what every child counted (the dead ones too), a child killed is
replaced while the port keeps answering, SIGTERM stops them all within the bound, and children
that cannot start stop the parent with their one line."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airgate.cli.run import SUPERVISE_GRACE_S
from tests.conftest import TEST_PEPPER
from tests.e2e.conftest import AIRGATE, free_port
from tests.helpers import killed_at_exit

pytestmark = pytest.mark.slow

STARTUP_S = 90  # two interpreters importing everything on a busy 2-core machine
REFUSED = 'airgate_ussd_refused_total{gateway="africastalking",status="403"}'


def _children(parent: int) -> set[int]:
    out = subprocess.run(["ps", "--ppid", str(parent), "-o", "pid="], capture_output=True)
    return {int(pid) for pid in out.stdout.split()}


def _get(url: str) -> tuple[int, bytes]:
    """One request on a connection of its own (urllib never keeps one alive)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:  # its connection closed now, not whenever it is collected
            return exc.code, exc.read()


def _pid_answering(base: str) -> int:
    status, body = _get(f"{base}/healthz")
    assert status == 200
    return int(json.loads(body)["pid"])


def _wait_until(
    check: Callable[[], bool], what: str, process: subprocess.Popen[str], timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout_s} s")


@pytest.fixture
def serving(
    cli_env: dict[str, str], tmp_path: Path, redis_url: str
) -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    """``serve --processes 2`` with its ops listener on a port of its own, both children up."""
    ops = f"http://127.0.0.1:{free_port()}"
    env = {**cli_env, "AIRGATE_REDIS_URL": redis_url, "AIRGATE_OPS_PORT": ops.rsplit(":", 1)[1]}
    subprocess.run(
        [AIRGATE, "db", "upgrade"], env=env, cwd=tmp_path, check=True, capture_output=True
    )
    process = subprocess.Popen(
        [AIRGATE, "serve", "--processes", "2"], env=env, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _wait_until(lambda: len(_children(process.pid)) == 2, "two children", process, 30)
        _wait_until(lambda: _get(f"{ops}/readyz")[0] == 200, "ready", process, STARTUP_S)
        yield process, f"http://127.0.0.1:{cli_env['AIRGATE_HTTP_PORT']}", ops
    finally:
        children = _children(process.pid)
        if process.poll() is None:  # stopped as an operator would: it removes its metrics dir
            process.terminate()
            try:
                process.wait(timeout=SUPERVISE_GRACE_S + 15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for child in children:  # had the parent to be killed: no orphan holds the port
            with contextlib.suppress(OSError):  # gone already
                if b"airgate" in Path(f"/proc/{child}/cmdline").read_bytes():
                    subprocess.run(["kill", "-9", str(child)], capture_output=True)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def _refused_total(ops: str) -> float:
    status, body = _get(f"{ops}/metrics")
    assert status == 200
    match = re.search(re.escape(REFUSED) + r" (\S+)", body.decode())
    return float(match.group(1)) if match else 0.0


def _answering_pids(ops: str, process: subprocess.Popen[str], want: set[int]) -> set[int]:
    """Pids seen answering /healthz, one connection each, until all of ``want`` have."""
    seen: set[int] = set()

    def all_seen() -> bool:
        seen.add(_pid_answering(ops))
        return want <= seen

    _wait_until(all_seen, f"each of {want} answering", process, 60)
    return seen


def _refuse(base: str, times: int) -> None:
    """POSTs without the gateway's secret: each refused, counted by whichever child took it."""
    for _ in range(times):
        request = urllib.request.Request(f"{base}/ussd/africastalking", data=b"", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        refused.value.close()
        assert refused.value.code == 403


def test_both_children_answer_and_metrics_count_for_all(
    serving: tuple[subprocess.Popen[str], str, str],
) -> None:
    process, base, ops = serving
    children = _children(process.pid)
    assert _answering_pids(ops, process, children) == children
    _refuse(base, 40)
    assert {_refused_total(ops) for _ in range(10)} == {40.0}  # whichever child answers


def test_a_killed_child_is_replaced_and_the_port_keeps_answering(
    serving: tuple[subprocess.Popen[str], str, str],
) -> None:
    process, base, ops = serving
    _refuse(base, 6)
    before = _children(process.pid)
    victim = min(before)
    subprocess.run(["kill", "-9", str(victim)], check=True)
    answered = 0
    deadline = time.monotonic() + STARTUP_S
    while not ((now := _children(process.pid)) - before and len(now) == 2):
        assert time.monotonic() < deadline, "the killed child was not replaced"
        assert _get(f"{base}/ussd/africastalking")[0] == 405  # the port answers (a GET)
        assert _pid_answering(ops) != victim
        answered += 1
        time.sleep(0.1)
    assert answered > 0
    survivors = _children(process.pid)
    assert victim not in survivors and len(survivors) == 2
    assert _answering_pids(ops, process, survivors) == survivors
    assert _refused_total(ops) == 6.0  # the dead child's count is kept: counters never go back
    for child in survivors:  # what `ps` shows of a child: fds, never a setting
        argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        assert argv[1:5] == [b"-m", b"airgate", b"serve", b"--ready-fd"]
        assert TEST_PEPPER.encode() not in b" ".join(argv)
    said = "".join(_stop(process))
    assert "serve.process_exited" in said
    assert TEST_PEPPER not in said


def _stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    started = time.monotonic()
    children = _children(process.pid)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=SUPERVISE_GRACE_S + 15)
    assert process.returncode == 0, err
    assert time.monotonic() - started < SUPERVISE_GRACE_S
    assert not any(Path(f"/proc/{pid}").exists() for pid in children)
    assert "Traceback" not in err
    return out, err


def test_sigterm_stops_every_child_within_the_bound(
    serving: tuple[subprocess.Popen[str], str, str],
) -> None:
    process, base, _ = serving
    _stop(process)
    with pytest.raises(OSError):
        _get(f"{base}/healthz")


def test_children_that_cannot_start_stop_the_parent_with_their_line(
    cli_env: dict[str, str], tmp_path: Path, redis_url: str
) -> None:
    env = {
        **cli_env,
        "AIRGATE_REDIS_URL": redis_url,
        # Nothing listens on the discard port: getMe fails in each child at start.
        "AIRGATE_TELEGRAM_TOKEN": "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1",
        "AIRGATE_TELEGRAM_API_URL": "http://127.0.0.1:9/bot",
    }
    process = subprocess.Popen(
        [AIRGATE, "serve", "--processes", "2"], env=env, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    with killed_at_exit(process):
        _, err = process.communicate(timeout=STARTUP_S)
    assert process.returncode == 1
    assert "Traceback" not in err
    assert "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1" not in err
    lines = {line for line in err.splitlines() if line.startswith("airgate:")}
    assert lines == {
        "airgate: cannot start the Telegram bot: NetworkError (check AIRGATE_TELEGRAM_TOKEN "
        "and AIRGATE_TELEGRAM_API_URL)"
    }


def test_a_bad_setting_is_one_line_before_any_child(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    result = subprocess.run(
        [AIRGATE, "serve", "--processes", "2"], env={**cli_env, "AIRGATE_HTTP_PORT": "http"},
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "AIRGATE_HTTP_PORT" in result.stderr
    assert result.stdout == ""  # no child was started, nothing said it listens


def test_a_taken_port_is_one_line_from_the_parent(cli_env: dict[str, str], tmp_path: Path) -> None:
    import socket

    with socket.create_server(("127.0.0.1", int(cli_env["AIRGATE_HTTP_PORT"]))):
        result = subprocess.run(
            [AIRGATE, "serve", "--processes", "2"], env=cli_env, cwd=tmp_path,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().endswith("address already in use (set AIRGATE_HTTP_PORT)")
    assert "Traceback" not in result.stderr
