"""`airgate serve` with AIRGATE_OPS_PORT: health and metrics on their own listener, as operators
expect, and not on the gateways'."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from tests.e2e.conftest import AIRGATE, free_port
from tests.e2e.test_demo import _stop, _wait_for


def test_serve_puts_health_and_metrics_on_the_ops_listener(
    cli_env: dict[str, str], tmp_path: Path, redis_url: str
) -> None:
    ops_port = str(free_port())
    env = {**cli_env, "AIRGATE_REDIS_URL": redis_url, "AIRGATE_OPS_PORT": ops_port}
    subprocess.run(
        [AIRGATE, "db", "upgrade"], env=env, cwd=tmp_path, check=True, capture_output=True
    )
    process = subprocess.Popen(
        [AIRGATE, "serve"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        status, body = _wait_for(f"http://127.0.0.1:{ops_port}/readyz", process)
        assert (status, body["database"], body["redis"]) == (200, "ok", "ok")
        gateways = f"http://127.0.0.1:{cli_env['AIRGATE_HTTP_PORT']}"
        for path in ("/metrics", "/healthz"):
            try:
                urllib.request.urlopen(gateways + path, timeout=5)
                raise AssertionError(f"{path} answered on the gateways' listener")
            except urllib.error.HTTPError as exc:
                assert exc.code == 404
    finally:
        out, _ = _stop(process)
    assert f"/metrics on http://127.0.0.1:{ops_port})" in out
