"""Private ``redis-server`` processes for tests that stop, pause or cluster Redis: never the shared
one at 127.0.0.1:6379. Each runs on a free port with its files under a temporary directory, and
is killed and reaped on the way out whatever the test did (tests/helpers.py, killed_at_exit)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import killed_at_exit

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
START_S = 10.0


@dataclass
class RedisServer:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def pause(self) -> None:
        """SIGSTOP: connections are accepted by the kernel, nothing is answered."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)


def free_ports(n: int, *, gap: int = 0) -> list[int]:
    """``n`` ports free now; with ``gap``, each port + ``gap`` is free too (a cluster node's bus
    port is its port + 10000)."""
    found: list[int] = []
    while len(found) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if gap and (port + gap > 65535 or not _free(port + gap)):
            continue
        if port not in found:
            found.append(port)
    return found


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.5) as s:
            s.settimeout(0.5)
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_server(port: int, directory: Path, *extra: str) -> Iterator[RedisServer]:
    """A ``redis-server`` on ``port`` (no persistence), answering PING when the block starts."""
    directory.mkdir(parents=True, exist_ok=True)
    args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)]
    args += ["--save", "", "--appendonly", "no", "--logfile", str(directory / "redis.log"), *extra]
    with killed_at_exit(subprocess.Popen(args, stdout=subprocess.DEVNULL)) as process:
        server = RedisServer(process, port)
        deadline = time.monotonic() + START_S
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on {port} did not start: {directory}/redis.log")
            time.sleep(0.02)
        try:
            yield server
        finally:
            server.resume()  # a test that failed while it was paused leaves no stopped process


@contextmanager
def private_redis() -> Iterator[RedisServer]:
    (port,) = free_ports(1)
    directory = Path(tempfile.mkdtemp(prefix="ag-redis-"))
    try:
        with redis_server(port, directory) as server:
            yield server
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def redis_cluster(masters: int = 3) -> Iterator[list[RedisServer]]:
    """``masters`` cluster-enabled servers made one cluster (``redis-cli --cluster create``, no
    replicas), every slot served when the block starts."""
    ports = free_ports(masters, gap=10000)
    directory = Path(tempfile.mkdtemp(prefix="ag-cluster-"))
    try:
        with ExitStack() as stack:
            servers = [
                stack.enter_context(
                    redis_server(
                        port,
                        directory / str(port),
                        *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
                        *("--cluster-node-timeout", "5000"),
                    )
                )
                for port in ports
            ]
            nodes = [f"127.0.0.1:{port}" for port in ports]
            subprocess.run(
                [REDIS_CLI, "--cluster", "create", *nodes, "--cluster-replicas", "0"]
                + ["--cluster-yes"],
                check=True,
                capture_output=True,
                timeout=60,
            )
            _wait_cluster_ok(ports[0])
            yield servers
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _wait_cluster_ok(port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        info = subprocess.run(
            [REDIS_CLI, "-p", str(port), "cluster", "info"], capture_output=True, text=True
        ).stdout
        if "cluster_state:ok" in info:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the cluster did not become ok: {info}")
        time.sleep(0.1)
