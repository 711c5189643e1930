"""deploy/haproxy.cfg as shipped, run by Debian's real HAProxy in front of two real `airgate
serve` (only its addresses changed to this machine's): both instances take traffic; one whose
Redis stops answering (its own redis-server, SIGSTOPped) fails /readyz on its ops port and leaves
the rotation while the other answers everything, and it comes back by itself once Redis does."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.e2e.conftest import AIRGATE, free_port
from tests.helpers import killed_at_exit

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
REDIS_SERVER = shutil.which("redis-server")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(HAPROXY).exists(), reason="haproxy is not installed"),
    pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed"),
]
ROOT = Path(__file__).resolve().parents[2]
STARTUP_S = 120
REFUSED = re.compile(r'airgate_ussd_refused_total\{gateway="africastalking",status="403"\} (\S+)')


def _config_here(proxy_port: int, serves: dict[str, tuple[int, int]]) -> str:
    """The shipped config with local addresses: each server's (gateway port, ops port)."""
    config = (ROOT / "deploy" / "haproxy.cfg").read_text()
    config = config.replace("bind :8080", f"bind 127.0.0.1:{proxy_port}")
    for name, (http, ops) in serves.items():
        config, found = re.subn(
            rf"^(\s*server {name}) {name}:8080$",
            rf"\1 127.0.0.1:{http} port {ops}",
            config,
            flags=re.M,
        )
        assert found == 1, name
    return config


def _post(url: str) -> int:
    request = urllib.request.Request(url, data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code


def _refused(ops_port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{ops_port}/metrics", timeout=10) as page:
        found = REFUSED.search(page.read().decode())
    return float(found.group(1)) if found else 0.0


def _ready(ops_port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{ops_port}/readyz", timeout=5) as answer:
        return bool(answer.status == 200)


def _until(check: Callable[[], bool], what: str, timeout_s: float = STARTUP_S) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        time.sleep(0.3)


@pytest.fixture
def stack(
    cli_env: dict[str, str], tmp_path: Path, redis_url: str
) -> Iterator[tuple[str, dict[str, int], subprocess.Popen[bytes]]]:
    """(proxy URL, ops port per serve, serve-2's own redis-server)."""
    with ExitStack() as stack:

        def start(
            name: str, args: list[str], env: dict[str, str] | None = None
        ) -> subprocess.Popen[bytes]:
            log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115
            stack.callback(log.close)
            process = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=log, stderr=log)
            stack.enter_context(killed_at_exit(process))
            return process

        own_redis = free_port()
        paused = start(
            "redis",
            [str(REDIS_SERVER), "--port", str(own_redis), "--save", "", "--appendonly", "no"],
        )
        subprocess.run([AIRGATE, "db", "upgrade"], env={**cli_env, "AIRGATE_REDIS_URL": redis_url},
                       cwd=tmp_path, check=True, capture_output=True)  # fmt: skip
        ports = {name: (free_port(), free_port()) for name in ("serve-1", "serve-2")}
        redis_of = {"serve-1": redis_url, "serve-2": f"redis://127.0.0.1:{own_redis}/0"}
        for name, (http, ops) in ports.items():
            env = {**cli_env, "AIRGATE_HTTP_PORT": str(http), "AIRGATE_OPS_PORT": str(ops),
                   "AIRGATE_REDIS_URL": redis_of[name]}  # fmt: skip
            start(name, [AIRGATE, "serve"], env)
        for _, ops in ports.values():
            _until(lambda ops=ops: _ready(ops), "serve ready")
        proxy_port = free_port()
        config = tmp_path / "haproxy.cfg"
        config.write_text(_config_here(proxy_port, ports))
        start("haproxy", [HAPROXY, "-db", "-f", str(config)])
        proxy = f"http://127.0.0.1:{proxy_port}"
        _until(lambda: _post(f"{proxy}/ussd/africastalking") == 403, "the proxy answering")
        yield proxy, {name: ops for name, (_, ops) in ports.items()}, paused
        paused.send_signal(signal.SIGCONT)


def test_the_shipped_proxy_routes_on_readiness(
    stack: tuple[str, dict[str, int], subprocess.Popen[bytes]],
) -> None:
    proxy, ops, paused = stack
    target = f"{proxy}/ussd/africastalking"

    def both_take_traffic() -> bool:
        before = {name: _refused(port) for name, port in ops.items()}
        assert all(_post(target) == 403 for _ in range(6))
        return all(_refused(port) > before[name] for name, port in ops.items())

    _until(both_take_traffic, "round robin over both")

    paused.send_signal(signal.SIGSTOP)  # serve-2's Redis: connections accepted, nothing answered

    def only_serve_1() -> bool:
        before = _refused(ops["serve-2"])
        assert all(_post(target) == 403 for _ in range(6))  # every request still answered
        return _refused(ops["serve-2"]) == before

    _until(only_serve_1, "serve-2 out of the rotation", timeout_s=60)
    for _ in range(3):  # and it stays out
        assert only_serve_1()

    paused.send_signal(signal.SIGCONT)
    _until(both_take_traffic, "serve-2 back in the rotation", timeout_s=60)
