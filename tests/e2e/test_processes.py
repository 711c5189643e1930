"""What AirGate's processes leave behind on a machine: the embedded ``redis-server`` stops when the
last AirGate process using it exits (one it did not start included), and one ``var/`` runs one
demo. Real processes, found afterwards in the process table."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import AIRGATE, CliRunner
from tests.e2e.test_demo import _sandbox_env, _start_demo, _stop, _wait_for

SEND = ("topup", "send", "+254700000001", "0712345670", "50", "--pin-stdin")


def redis_servers(var_dir: Path) -> list[int]:
    """The pids of every process working in ``var_dir/redis``: the embedded server chdirs there."""
    where = (var_dir / "redis").resolve()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if Path(os.readlink(entry / "cwd")) == where:
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def assert_no_redis_left(var_dir: Path) -> None:
    assert not (var_dir / "redis" / "redis.pid").exists()
    assert redis_servers(var_dir) == []


@pytest.fixture(autouse=True)
def _no_server_outlives_the_test(tmp_path: Path) -> Iterator[None]:
    """A failed test must not leave its server running for the rest of the machine's life."""
    yield
    for pid in redis_servers(tmp_path / "var"):
        os.kill(pid, signal.SIGKILL)


def _serve(cli_env: dict[str, str], tmp_path: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [AIRGATE, "serve"],
        env=cli_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    status, body = _wait_for(f"http://127.0.0.1:{cli_env['AIRGATE_HTTP_PORT']}/health", process)
    assert (status, body["redis"]) == (200, "ok")
    return process


def test_a_one_off_command_stops_the_redis_it_started(airgate: CliRunner, tmp_path: Path) -> None:
    var = tmp_path / "var"
    airgate("seed", "--demo", "--retailers", "1")
    assert redis_servers(var) == []  # seeding needs no Redis
    airgate("worker", "--burst")  # an empty queue: done at once (no aggregator needed)
    assert_no_redis_left(var)
    airgate(*SEND, stdin="1234\n")  # queues the delivery: starts the embedded Redis
    assert_no_redis_left(var)


def test_serve_shares_its_redis_and_stops_it_on_ctrl_c(
    airgate: CliRunner, cli_env: dict[str, str], tmp_path: Path
) -> None:
    var = tmp_path / "var"
    airgate("seed", "--demo", "--retailers", "1")
    process = _serve(cli_env, tmp_path)
    try:
        (server,) = redis_servers(var)
        airgate(*SEND, stdin="1234\n")  # uses serve's Redis, and leaves it running
        assert redis_servers(var) == [server]
    finally:
        _stop(process)
    assert_no_redis_left(var)


def test_a_redis_left_by_a_killed_process_is_adopted_and_stopped(
    airgate: CliRunner, cli_env: dict[str, str], tmp_path: Path
) -> None:
    var = tmp_path / "var"
    airgate("seed", "--demo", "--retailers", "1")
    process = _serve(cli_env, tmp_path)
    process.kill()  # no clean-up: its Redis is an orphan now
    process.communicate(timeout=20)
    (orphan,) = redis_servers(var)
    airgate(*SEND, stdin="1234\n")
    assert_no_redis_left(var)


def test_a_second_demo_on_the_same_var_says_which_is_running(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    _sandbox_env(cli_env)
    first = _start_demo(cli_env, tmp_path)
    try:
        _wait_for(f"http://127.0.0.1:{cli_env['AIRGATE_HTTP_PORT']}/health", first)
        second = subprocess.run(
            [AIRGATE, "demo", "--retailers", "1"],
            env=cli_env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert second.stderr.startswith("airgate: a demo is already running"), second.stderr
        assert f"(pid {first.pid})" in second.stderr and second.stderr.count("\n") == 1
        assert second.stdout == ""  # no banner, nothing started
        assert first.poll() is None
        _wait_for(f"http://127.0.0.1:{cli_env['AIRGATE_HTTP_PORT']}/health", first)
    finally:
        _stop(first)
    assert_no_redis_left(tmp_path / "var")


def test_a_demo_takes_over_a_stale_pid_file(cli_env: dict[str, str], tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    var = tmp_path / "var"
    var.mkdir()
    (var / "demo.pid").write_text(f"{gone.pid}\n")  # a demo that died without cleaning up
    _sandbox_env(cli_env)
    process = _start_demo(cli_env, tmp_path)
    try:
        _wait_for(f"http://127.0.0.1:{cli_env['AIRGATE_HTTP_PORT']}/health", process)
        assert (var / "demo.pid").read_text().strip() == str(process.pid)
    finally:
        _stop(process, signal.SIGTERM)
    assert_no_redis_left(var)
