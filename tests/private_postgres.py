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
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import free_port
from tests.helpers import killed_at_exit

BIN = Path("/usr/lib/postgresql/15/bin")
START_S = 60  # a loaded machine is slow to start a cluster, not unable to


def available() -> bool:
    return (BIN / "initdb").exists() and (BIN / "postgres").exists()


def require(what: str, *, present: bool) -> None:
    """A test that needs ``what`` and has not got it: fails where PostgreSQL is required (CI,
    AIRGATE_TEST_REQUIRE_POSTGRES=1), else is skipped saying what is missing."""
    if present:
        return
    from tests.conftest import REQUIRE_POSTGRES

    if REQUIRE_POSTGRES:
        pytest.fail(f"AIRGATE_TEST_REQUIRE_POSTGRES: {what} is missing", pytrace=False)
    pytest.skip(f"{what} is missing")


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
    """Until ``psql`` gets an answer through ``server`` (a postmaster, a PgBouncer)."""
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"{server.args[0]} exited with {server.returncode}")
        probe = subprocess.run([*psql, "-qAtc", "SELECT 1"], capture_output=True, text=True)
        if probe.stdout.strip() == "1":
            return
        time.sleep(0.1)  # a probe's pause while the server starts, not a synchronisation
    raise RuntimeError(f"{server.args[0]} did not answer within {START_S} s")


PGBOUNCER = Path("/usr/sbin/pgbouncer")


def pgbouncer_available() -> bool:
    return PGBOUNCER.exists()


@contextmanager
def private_pgbouncer(upstream: str, *, server_pool: int = 4) -> Iterator[str]:
    """A PgBouncer of the caller's own in transaction pooling mode in front of ``upstream``'s
    server (``postgresql://user@host:port/…``), every database passed through; at most
    ``server_pool`` server connections per database and user (the shared server's 100 are
    everybody's). Yields ``postgresql://user@127.0.0.1:<port>``: append ``/database``."""
    parsed = urlsplit(upstream)
    folder = Path(tempfile.mkdtemp(prefix="ag-pgb-"))
    as_postgres = _as_postgres(folder)
    try:
        users = folder / "users.txt"
        users.write_text('"postgres" ""\n"root" ""\n"airgate" ""\n')
        port = free_port()
        config = folder / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"* = host={parsed.hostname or '127.0.0.1'} port={parsed.port or 5432}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {users}\n"
            f"pool_mode = transaction\ndefault_pool_size = {server_pool}\n"
            "max_client_conn = 500\nserver_idle_timeout = 30\n"
            f"logfile = {folder / 'pgbouncer.log'}\npidfile = {folder / 'pgbouncer.pid'}\n"
        )
        if as_postgres:
            for path in (users, config):
                os.chown(path, as_postgres["user"], as_postgres["group"])  # type: ignore[arg-type]
        bouncer = subprocess.Popen(
            [PGBOUNCER, config],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **as_postgres,  # type: ignore[arg-type]
        )
        with killed_at_exit(bouncer):
            try:
                url = f"postgresql://{parsed.username or 'postgres'}@127.0.0.1:{port}"
                psql = ["psql", f"{url}/{parsed.path.strip('/') or 'postgres'}"]
                _until_it_answers(psql, bouncer)
                yield url
            finally:
                bouncer.send_signal(signal.SIGINT)  # shut down at once, clients or not
                try:
                    bouncer.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    bouncer.kill()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
