"""``airgate demo`` and ``airgate serve`` as real processes: what a new user sees first."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.conftest import AIRGATE, free_port

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


def _stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    return out, err


def test_demo_runs_on_embedded_defaults(cli_env: dict[str, str], tmp_path: Path) -> None:
    port = cli_env["AIRGATE_HTTP_PORT"]
    process = subprocess.Popen(
        [AIRGATE, "demo", "--retailers", "2"],
        env=cli_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        status, body = _wait_for(f"http://127.0.0.1:{port}/health", process)
        assert (status, body["database"], body["redis"]) == (200, "ok", "ok")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as metrics:
            assert b"python_info" in metrics.read()
    finally:
        out, _ = _stop(process)
    assert f"http://127.0.0.1:{port}" in out and "embedded" in out and "+254700000100" in out
    assert (tmp_path / "var" / "airgate.db").exists()
    assert (tmp_path / "var" / "redis" / "appendonly.aof").exists() or any(
        (tmp_path / "var" / "redis").glob("appendonly*")
    )
    assert not (tmp_path / "var" / "redis" / "redis.sock").exists()  # the demo stopped its Redis


@pytest.mark.parametrize(
    ("redis_url", "healthy"), [("redis://127.0.0.1:6379/15", True), ("", False)]
)
def test_serve_reports_health_of_its_redis(
    cli_env: dict[str, str], tmp_path: Path, redis_url: str, healthy: bool
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    env = {**cli_env, "AIRGATE_REDIS_URL": redis_url or dead}
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
