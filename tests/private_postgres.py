"""A PostgreSQL server of a test's own (initdb into a temporary folder, its own port), for what
must not be done to the shared one: exhaust its ``max_connections``, stop it. Trust logins for
``postgres`` (a superuser) and ``airgate`` (not one: the superuser-reserved slots stay free for
an operator's ``psql``). Stopped and removed however the test ends."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.e2e.conftest import free_port
from tests.helpers import killed_at_exit

BIN = Path("/usr/lib/postgresql/15/bin")
START_S = 60  # a loaded machine is slow to start a cluster, not unable to


def available() -> bool:
    return (BIN / "initdb").exists() and (BIN / "postgres").exists()


@contextmanager
def private_postgres(*, max_connections: int, reserved: int = 3) -> Iterator[str]:
    """The server's URL for the ``airgate`` role and its database ``airgate``."""
    folder = Path(tempfile.mkdtemp(prefix="ag-pg-"))
    as_postgres = _as_postgres(folder)
    try:
        data = folder / "data"
        subprocess.run(
            [
                BIN / "initdb",
                "-D",
                data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
            timeout=START_S,
            **as_postgres,  # type: ignore[arg-type]
        )
        port = free_port()
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(folder),
            "max_connections": str(max_connections),
            "superuser_reserved_connections": str(reserved),
            "fsync": "off",
            "synchronous_commit": "off",
            "shared_buffers": "16MB",
        }
        args = [arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")]
        server = subprocess.Popen(
            [BIN / "postgres", "-D", data, "-p", str(port), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **as_postgres,  # type: ignore[arg-type]
        )
        with killed_at_exit(server):
            try:
                psql = [str(BIN / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
                _until_it_answers(psql, server)
                for sql in ("CREATE ROLE airgate LOGIN", "CREATE DATABASE airgate OWNER airgate"):
                    subprocess.run([*psql, "-qc", sql], check=True, capture_output=True)
                yield f"postgresql://airgate@127.0.0.1:{port}/airgate"
            finally:
                server.send_signal(signal.SIGINT)  # a fast shutdown: SIGTERM waits for clients
                try:
                    server.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    server.kill()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _as_postgres(folder: Path) -> dict[str, object]:
    """initdb and postgres refuse to run as root: as ``postgres`` then, owning ``folder``."""
    if os.geteuid() != 0:
        return {}
    user = pwd.getpwnam("postgres")
    os.chown(folder, user.pw_uid, user.pw_gid)
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _until_it_answers(psql: list[str], server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the private PostgreSQL exited with {server.returncode}")
        probe = subprocess.run([*psql, "-qAtc", "SELECT 1"], capture_output=True, text=True)
        if probe.stdout.strip() == "1":
            return
        time.sleep(0.1)  # a probe's pause while the server starts, not a synchronisation
    raise RuntimeError(f"the private PostgreSQL did not answer within {START_S} s")
