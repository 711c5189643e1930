"""The async engine, sessions, and migrations.

SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE`` so that a writer takes the write lock at
the start of its transaction: the guarded balance UPDATE then never meets a stale snapshot, and two
writers queue instead of failing with "database is locked" halfway through.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from core.errors import SettingsError

if TYPE_CHECKING:
    from alembic.config import Config

SQLITE_BUSY_TIMEOUT_S = 60  # long enough for a queue of 200 concurrent writers


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    # A database error's message would otherwise carry the statement's parameters (a customer's
    # number, a party's) into every log line and traceback that shows it.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}, **kwargs)
        _sqlite_pragmas(engine)
        return engine
    # pool_size (AIRGATE_DB_POOL_SIZE) should cover the steady concurrency and the overflow is only
    # a margin for bursts: an overflow connection is closed when it is returned while pool_size
    # connections are idle, so a steady load above pool_size reconnects all the time (with 20 + 20:
    # 160-210 connects per 10 s at 32 clients and 13 % fewer reservations/s, docs/BENCHMARKS.md).
    return create_async_engine(url, **kwargs)


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any exception."""
    async with sessions() as session, session.begin():
        yield session


def alembic_config() -> Config:
    from alembic.config import Config  # imported here: only migrations pay for Alembic

    cfg = Config()
    cfg.set_main_option("script_location", "core:migrations")
    return cfg


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Run migrations up to ``revision`` on ``engine`` (what ``airgate db upgrade`` does)."""

    from alembic import command

    def _run(connection: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(_run)


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    def _rev(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(_rev)


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None  # the package ships its migrations
    return head


async def ensure_migrated(engine: AsyncEngine) -> None:
    """Refuse to run on a database the code's migrations have not reached, in one line."""
    current, head = await current_revision(engine), head_revision()
    if current != head:
        raise SettingsError(
            setting="AIRGATE_DATABASE_URL",
            reason=f"the database is at migration {current or 'none'}, this AirGate needs {head}:"
            " run `airgate db upgrade`",
            value=str(engine.url.render_as_string(hide_password=True)),
        )


class Lookups:
    """A few asyncpg connections of its own for the one read on the first hop of every
    conversation (who is calling), outside SQLAlchemy's pool: a checkout and check-in through
    that pool cost more CPU than the query (docs/BENCHMARKS.md, "One write for many").

    :meth:`take` hands out an idle connection, or None: the caller then opens one with
    :meth:`open` while fewer than ``size`` exist, or else takes SQLAlchemy's path. A connection
    goes back with :meth:`give_back` after a query that succeeded; after anything else (an
    error, a cancellation halfway) the caller :meth:`drop`\\ s it, so an idle connection is
    always one that answered its last query. Used for read-only statements outside any
    transaction only: nothing to reset between uses.
    """

    def __init__(self, dsn: str, *, size: int) -> None:
        self._dsn = dsn
        self._size = size
        self._idle: list[Any] = []
        self._count = 0  # open or opening
        self._closed = False

    def take(self) -> Any | None:
        return self._idle.pop() if self._idle else None

    def can_open(self) -> bool:
        return not self._closed and self._count < self._size

    async def open(self) -> Any:
        import asyncpg  # type: ignore[import-untyped]

        self._count += 1
        try:
            return await asyncpg.connect(self._dsn)
        except BaseException:
            self._count -= 1
            raise

    def give_back(self, conn: Any) -> None:
        if self._closed:
            self.drop(conn)
        else:
            self._idle.append(conn)

    def drop(self, conn: Any) -> None:
        self._count -= 1
        conn.terminate()  # no I/O to wait for: the socket is closed at once

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            self._count -= 1
            await conn.close(timeout=5)
