"""``airgate sandbox`` as a user starts it: it answers over HTTP and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.e2e.conftest import AIRGATE, free_port
from tests.helpers import killed_at_exit

START_TIMEOUT_S = 15


def _http(url: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        return json.loads(resp.read())


def _wait_for(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            _http(url)
            return
        except (urllib.error.URLError, ConnectionError):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the sandbox did not answer"
            time.sleep(0.1)


def test_sandbox_serves_and_stops_cleanly(cli_env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [AIRGATE, "sandbox", "--port", str(port), "--latency-ms", "0"],
        env=cli_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with killed_at_exit(proc):
        _wait_for(f"{base}/sandbox/stats", proc)
        token = _http(
            f"{base}/oauth/token",
            {
                "client_id": "sandbox",
                "client_secret": "sandbox",
                "grant_type": "client_credentials",
                "audience": base,
            },
        )
        assert token["token_type"] == "Bearer" and token["access_token"]
        stats = _http(f"{base}/sandbox/stats")
        assert (stats["delivered"], stats["requests"], stats["tokens"]) == (0, 0, 1)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert f"http://127.0.0.1:{port}" in stdout and "stopping" in stdout
