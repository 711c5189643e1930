"""A PostgreSQL server of one test's own, to stop and start again (the chaos test's outage)
without touching the machine's shared one (a private Redis to pause: tests/redis_servers.py).

:func:`private_postgres`: a cluster made with ``initdb`` (PostgreSQL 15's binaries, trust
authentication, no fsync: a throwaway) in a temporary directory, listening on 127.0.0.1 on a free
port; run as the ``postgres`` user when the test runs as root (``initdb`` refuses root).

Invariant: however the ``with`` block ends, the server is stopped (``pg_ctl stop -m immediate``)
and its directory removed: no test leaves a server behind.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.conftest import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_TIMEOUT_S = 60  # pg_ctl's own wait for a start or stop, on a busy machine


def _as_postgres() -> list[str]:
    """``initdb`` and ``postgres`` refuse to run as root: as root, run them as ``postgres``."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@dataclass
class PrivatePostgres:
    directory: Path
    port: int

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def log(self) -> Path:
        return self.directory / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [*_as_postgres(), str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-t",
             str(PG_TIMEOUT_S), *args],
            check=True, capture_output=True, timeout=PG_TIMEOUT_S + 10,
        )  # fmt: skip

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._pg_ctl("-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast``: every session is ended (its client sees the connection drop), as a restart
        by an operator or a failover does; ``immediate``: as a crash."""
        self._pg_ctl("-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    # Not under pytest's tmp_path: its directories are private to root, and the server runs as
    # postgres. A short path too: the socket's path is limited to ~107 bytes.
    directory = Path(tempfile.mkdtemp(prefix="ag-pg-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(directory, owner.pw_uid, owner.pw_gid)
    server = PrivatePostgres(directory, free_port())
    try:
        subprocess.run(
            [*_as_postgres(), str(PG_BIN / "initdb"), "-D", str(server.data), "-U", "postgres",
             "--auth=trust", "--no-sync", "-E", "UTF8"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        server.start()
        yield server
    finally:
        if server.running():
            server.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)
