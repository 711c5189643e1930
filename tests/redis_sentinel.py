"""A local Redis primary, its replica and three sentinels, made from ``redis-server`` for a test.

Each runs in the foreground of a process this module started (killed and reaped on the way out
by :func:`sentinel_set`, whatever the test did), on free ports, with its files in the test's
temporary folder. The sentinels decide a primary is down after ``DOWN_AFTER_MS`` and promote the
replica: a failover takes a few seconds, not the production default's half minute.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from tests.e2e.conftest import free_port
from tests.helpers import killed_at_exit

MASTER = "airgate-queue"
DOWN_AFTER_MS = 1_000
FAILOVER_TIMEOUT_MS = 3_000
REDIS_SERVER = shutil.which("redis-server")


@dataclass
class SentinelSet:
    folder: Path
    primary_port: int
    replica_port: int
    sentinel_ports: list[int]
    password: str
    stack: ExitStack = field(default_factory=ExitStack)  # kills and reaps every process started
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    commands: dict[int, list[str]] = field(default_factory=dict)

    def start(self, port: int, name: str, lines: list[str], *flags: str) -> None:
        conf = self.folder / f"{name}.conf"
        conf.write_text("\n".join([f"port {port}", *lines, f"dir {self.folder}", "daemonize no"]))
        assert REDIS_SERVER is not None, "redis-server is not installed"
        self.commands[port] = [REDIS_SERVER, str(conf), *flags]
        self.restart(port)

    def restart(self, port: int) -> None:
        """Start the server on ``port`` (again, after :meth:`kill`) with its configuration file,
        which its sentinels may have rewritten (an old primary comes back as a replica)."""
        log = self.folder / f"{port}.log"
        with log.open("ab") as out:  # the child has its own copy
            process = subprocess.Popen(
                self.commands[port], stdout=out, stderr=subprocess.STDOUT, cwd=self.folder
            )
        self.processes[port] = self.stack.enter_context(killed_at_exit(process))

    @property
    def url(self) -> str:
        """The AIRGATE_QUEUE_REDIS_URL of this set."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://:{self.password}@{hosts}/{MASTER}/0"

    def data_client(self, port: int) -> aioredis.Redis:
        """A client of the primary or the replica (they want the password; sentinels do not)."""
        return aioredis.Redis(port=port, password=self.password, socket_timeout=1)

    def kill(self, port: int) -> None:
        """SIGKILL the server on ``port``: no shutdown, no last write to anyone."""
        process = self.processes[port]
        process.kill()
        process.wait(10)

    async def master_port(self) -> int | None:
        """The primary's port as the first sentinel that answers says, or None."""
        for port in self.sentinel_ports:
            client = aioredis.Redis(port=port, socket_timeout=1)
            try:
                host_port = await client.sentinel_get_master_addr_by_name(MASTER)
                return int(host_port[1]) if host_port else None
            except (OSError, aioredis.RedisError):
                continue
            finally:
                await client.aclose()
        return None

    async def replication(self, port: int) -> dict[str, Any]:
        client = self.data_client(port)
        try:
            return dict(await client.info("replication"))
        finally:
            await client.aclose()

    async def ready(self) -> bool:
        """The replica is in sync and every sentinel knows the other two and the replica."""
        try:
            replica = (await self.replication(self.primary_port)).get("slave0")
            if not isinstance(replica, dict) or replica.get("state") != "online":
                return False
            for port in self.sentinel_ports:
                client = aioredis.Redis(port=port, socket_timeout=1, decode_responses=True)
                try:
                    state = (await client.sentinel_masters())[MASTER]
                finally:
                    await client.aclose()
                if state["num-other-sentinels"] < 2 or state["num-slaves"] < 1:
                    return False
        except (OSError, aioredis.RedisError, KeyError):
            return False
        return True


@contextmanager
def sentinel_set(folder: Path, password: str) -> Iterator[SentinelSet]:
    """Primary, replica and three sentinels (quorum 2), all stopped on the way out; the data
    nodes want ``password`` (each may become the other's replica: masterauth on both)."""
    folder.mkdir(parents=True, exist_ok=True)
    ports = free_port(), free_port(), [free_port() for _ in range(3)]
    found = SentinelSet(folder, *ports, password=password)
    server = [
        f"requirepass {password}",
        f"masterauth {password}",
        "bind 127.0.0.1",
        "save ''",
        "appendonly no",
        "protected-mode no",
        "repl-diskless-sync-delay 0",
    ]
    with found.stack:
        start = found.start
        start(
            found.primary_port, "primary", [*server, f"dbfilename primary-{found.primary_port}.rdb"]
        )
        start(
            found.replica_port,
            "replica",
            [
                *server,
                f"dbfilename replica-{found.replica_port}.rdb",
                f"replicaof 127.0.0.1 {found.primary_port}",
            ],
        )
        for i, port in enumerate(found.sentinel_ports):
            start(
                port,
                f"sentinel-{i}",
                [
                    "bind 127.0.0.1",
                    "protected-mode no",
                    f"sentinel monitor {MASTER} 127.0.0.1 {found.primary_port} 2",
                    f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}",
                    f"sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}",
                    f"sentinel parallel-syncs {MASTER} 1",
                    f"sentinel auth-pass {MASTER} {password}",
                ],
                "--sentinel",
            )
        yield found


async def wait_ready(found: SentinelSet, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not await found.ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"sentinel set not ready after {timeout_s} s: see {found.folder}")
        await asyncio.sleep(0.1)
