"""The async engine, sessions, and migrations.

SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE`` so that a writer takes the write lock at
the start of its transaction: the guarded balance UPDATE then never meets a stale snapshot, and two
writers queue instead of failing with "database is locked" halfway through.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Select, event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from core import deadline
from core.errors import SettingsError
from core.stores import database_errors

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
        _busy_wait_within_deadline(conn)
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _busy_wait_within_deadline(conn: Connection) -> None:
    """Under a deadline (core/deadline.py), BEGIN IMMEDIATE waits for the write lock only as long
    as the deadline allows ("database is locked" then, which core/stores.py says as
    DeadlineExceeded); otherwise SQLITE_BUSY_TIMEOUT_S, as the connection was opened with. The
    wait cannot be cancelled from asyncio (it runs in aiosqlite's thread), hence bounded here."""
    budget = deadline.current()
    wait_ms = SQLITE_BUSY_TIMEOUT_S * 1000 if budget is None else int(budget.lock_wait_s() * 1000)
    info = conn.connection.info
    if info.get("busy_ms", SQLITE_BUSY_TIMEOUT_S * 1000) != wait_ms:
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {wait_ms}")
        info["busy_ms"] = wait_ms


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

    await _migrate(engine, lambda cfg: command.upgrade(cfg, revision))


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Undo migrations down to ``revision`` (``"base"``: an empty database)."""
    from alembic import command

    await _migrate(engine, lambda cfg: command.downgrade(cfg, revision))


async def _migrate(engine: AsyncEngine, step: Callable[[Config], None]) -> None:
    """``step`` in one transaction. On SQLite with foreign keys off meanwhile, as SQLite's own
    procedure for altering a table says (a migration that drops a column rebuilds the table,
    which the rows pointing at it would refuse halfway; the pragma is a no-op inside a
    transaction, hence set before it), and checked before the commit."""
    sqlite = engine.dialect.name == "sqlite"

    def run(connection: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        step(cfg)
        if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first():
            raise RuntimeError("the migration left rows pointing at nothing")

    async with engine.connect() as conn:
        raw: Any = await conn.get_raw_connection()
        if sqlite:
            await raw.driver_connection.execute("PRAGMA foreign_keys=OFF")
        try:
            async with conn.begin():
                await conn.run_sync(run)
        finally:
            if sqlite:
                await raw.driver_connection.execute("PRAGMA foreign_keys=ON")


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
    """One-row reads outside any transaction, for the read on the first hop of every
    conversation (who is calling): :meth:`first` is all a service sees.

    On PostgreSQL the statement runs on a few asyncpg connections of this class's own, outside
    SQLAlchemy's pool (a checkout and check-in through that pool cost more CPU than the query:
    docs/BENCHMARKS.md, "One write for many"), compiled once per statement. When all ``size``
    are busy, or one fails (it is dropped: an idle connection is always one that answered its
    last query), the read goes through SQLAlchemy on an AUTOCOMMIT connection, which recovers from
    a lost database as SQLAlchemy does and raises StoreUnavailable for it (core/stores.py). On
    SQLite (or with ``size`` 0) that is the only path. Read-only statements only: nothing to reset
    between uses, and asking again is safe.
    """

    def __init__(self, engine: AsyncEngine, *, size: int) -> None:
        self._engine = engine
        postgresql = engine.dialect.name == "postgresql"
        self._size = size if postgresql else 0
        self._dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._idle: list[Any] = []
        self._count = 0  # open or opening
        self._closed = False
        self._compiled: dict[Select[Any], tuple[str, tuple[str, ...]]] = {}

    async def first(self, query: Select[Any], **params: Any) -> Sequence[Any] | None:
        """The first row ``query`` gives for ``params`` (its bind parameters by name), or None."""
        conn = await self._take()
        if conn is not None:
            sql, names = self._sql(query)
            try:
                row = await conn.fetchrow(sql, *(params[name] for name in names))
            except Exception:  # SQLAlchemy's path below says what is wrong, if anything
                self._drop(conn)
            except BaseException:  # cancelled halfway: the connection's state is unknown
                self._drop(conn)
                raise
            else:
                self._give_back(conn)
                return row  # type: ignore[no-any-return]  # an asyncpg Record
        async with database_errors(self._engine.connect()) as sa_conn:
            autocommit = await sa_conn.execution_options(isolation_level="AUTOCOMMIT")
            found: Sequence[Any] | None = (await autocommit.execute(query, params)).first()
            return found

    async def _take(self) -> Any | None:
        if self._idle:
            return self._idle.pop()
        if self._closed or self._count >= self._size:
            return None
        import asyncpg  # type: ignore[import-untyped]

        self._count += 1
        try:
            return await asyncpg.connect(self._dsn)
        except Exception:  # SQLAlchemy's path says what is wrong
            self._count -= 1
            return None
        except BaseException:
            self._count -= 1
            raise

    def _sql(self, query: Select[Any]) -> tuple[str, tuple[str, ...]]:
        """``query`` as asyncpg's SQL and its parameters' names in order, compiled once."""
        found = self._compiled.get(query)
        if found is None:
            compiled = query.compile(dialect=self._engine.dialect)
            found = self._compiled[query] = (compiled.string, tuple(compiled.positiontup or ()))
        return found

    def _give_back(self, conn: Any) -> None:
        if self._closed:
            self._drop(conn)
        else:
            self._idle.append(conn)

    def _drop(self, conn: Any) -> None:
        self._count -= 1
        conn.terminate()  # no I/O to wait for: the socket is closed at once

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            self._count -= 1
            await conn.close(timeout=5)
