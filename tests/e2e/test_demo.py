"""``airgate demo`` and ``airgate serve`` as real processes: what a new user sees first."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.conftest import AIRGATE, CliRunner, free_port
from tests.e2e.test_topup_e2e import sms_to, wait_until
from tests.helpers import killed_at_exit

STARTUP_S = 60


def _get(url: str) -> tuple[int, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _wait_for(url: str, process: subprocess.Popen[str]) -> tuple[int, dict[str, str]]:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            return _get(url)
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer in {STARTUP_S}s")


def _stop(process: subprocess.Popen[str], sig: signal.Signals = signal.SIGINT) -> tuple[str, str]:
    with killed_at_exit(process):  # a stop that hangs still leaves no demo behind
        process.send_signal(sig)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    return out, err


def _sandbox_env(cli_env: dict[str, str]) -> str:
    """The demo's sandbox on a free port, and AirGate pointed at it: still "the local sandbox"."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cli_env.update(
        AIRGATE_SANDBOX_PORT=str(port),
        AIRGATE_PROVIDER_URL=base,
        AIRGATE_PROVIDER_AUTH_URL=base,
        AIRGATE_SMS_URL=base,
    )
    return base


def _start_demo(cli_env: dict[str, str], tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [AIRGATE, "demo", "--retailers", "2"],
        env=cli_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_demo_runs_on_embedded_defaults_and_delivers_a_topup(
    cli_env: dict[str, str], airgate: CliRunner, tmp_path: Path
) -> None:
    port = cli_env["AIRGATE_HTTP_PORT"]
    sandbox = _sandbox_env(cli_env)
    process = _start_demo(cli_env, tmp_path)
    try:
        status, body = _wait_for(f"http://127.0.0.1:{port}/health", process)
        assert (status, body["database"], body["redis"]) == (200, "ok", "ok")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as metrics:
            assert b"python_info" in metrics.read()
        # The "Try" line, from another terminal: the demo's own sandbox and worker deliver it.
        sent = json.loads(
            airgate(
                "topup", "send", "+254700000001", "0712345670", "50", "--pin-stdin", "--json",
                stdin="1234\n",
            ).stdout
        )  # fmt: skip

        def final() -> str | None:
            state: str = json.loads(airgate("topup", "show", sent["id"], "--json").stdout)["state"]
            return state if state in ("delivered", "failed") else None

        assert wait_until("the demo did not deliver it", final) == "delivered"
        receipt = wait_until("no receipt SMS", lambda: sms_to(sandbox, "+254712345670"))
        assert sent["id"] in receipt[0]["message"]
    finally:
        out, err = _stop(process)
    assert f"http://127.0.0.1:{port}" in out and "embedded" in out and "+254700000100" in out
    assert f"Sandbox   {sandbox}" in out and f"curl {sandbox}/sandbox/sms" in out
    assert f"API       http://127.0.0.1:{port}/api/v1/docs" in out
    assert "airgate topup send +254700000001 0712345670 50" in out and "PIN 1234" in out
    assert "worker.ready" in out + err and "worker.stopping" in out + err  # it ran, stopped
    assert (tmp_path / "var" / "airgate.db").exists()
    assert (tmp_path / "var" / "redis" / "appendonly.aof").exists() or any(
        (tmp_path / "var" / "redis").glob("appendonly*")
    )
    assert not (tmp_path / "var" / "redis" / "redis.sock").exists()  # the demo stopped its Redis


def test_demo_with_its_sandbox_port_taken_says_so_in_one_line(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        env = {**cli_env, "AIRGATE_SANDBOX_PORT": str(port), "AIRGATE_PROVIDER_URL": base}
        result = subprocess.run(
            [AIRGATE, "demo"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 1
    assert result.stderr.startswith(f"airgate: cannot listen on 127.0.0.1:{port} for the sandbox")
    assert result.stderr.count("\n") == 1 and "AIRGATE_SANDBOX_PORT" in result.stderr
    assert not (tmp_path / "var" / "redis" / "redis.sock").exists()


def test_demo_pointed_at_another_provider_starts_no_sandbox(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    elsewhere = f"http://127.0.0.1:{free_port()}"  # e.g. https://topups-sandbox.reloadly.com
    cli_env.update(AIRGATE_SANDBOX_PORT=str(free_port()), AIRGATE_PROVIDER_URL=elsewhere)
    process = _start_demo(cli_env, tmp_path)
    try:
        _wait_for(f"http://127.0.0.1:{cli_env['AIRGATE_HTTP_PORT']}/health", process)
        with pytest.raises(OSError):  # nothing on the sandbox port
            _get(f"http://127.0.0.1:{cli_env['AIRGATE_SANDBOX_PORT']}/sandbox/stats")
    finally:
        out, _ = _stop(process, signal.SIGTERM)  # as a service manager stops it
    assert f"Provider  {elsewhere}  (AIRGATE_PROVIDER_URL: no sandbox started)" in out
    assert "Sandbox" not in out


@pytest.mark.parametrize("healthy", [True, False])
def test_serve_reports_health_of_its_redis(
    cli_env: dict[str, str], tmp_path: Path, redis_url: str, healthy: bool
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    env = {**cli_env, "AIRGATE_REDIS_URL": redis_url if healthy else dead}
    subprocess.run(
        [AIRGATE, "db", "upgrade"], env=env, cwd=tmp_path, check=True, capture_output=True
    )
    process = subprocess.Popen(
        [AIRGATE, "serve"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        status, body = _wait_for(f"http://127.0.0.1:{cli_env['AIRGATE_HTTP_PORT']}/health", process)
    finally:
        _stop(process)
    if healthy:
        assert (status, body["redis"]) == (200, "ok")
    else:
        assert status == 503 and body["status"] == "degraded" and body["redis"] != "ok"
