"""The async engine, sessions, and migrations.

SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE`` so that a writer takes the write lock at
the start of its transaction: the guarded balance UPDATE then never meets a stale snapshot, and two
writers queue instead of failing with "database is locked" halfway through. A lone read on an
AUTOCOMMIT connection (``Lookups.first``) takes no lock: a writer holding it does not hold up who
is calling.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, ExceptionContext, Select, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import await_only

from core import deadline
from core.errors import SettingsError, StoreUnavailable
from core.stores import database_errors, deadline_passed

if TYPE_CHECKING:
    from alembic.config import Config

    from core.settings import Settings

SQLITE_BUSY_TIMEOUT_S = 60  # long enough for a queue of 200 concurrent writers


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An engine for ``url``; on PostgreSQL with what :func:`postgres_options` gives, or what
    ``kwargs`` says instead (a migration's or a test's one-off engine)."""
    # A database error's message would otherwise carry the statement's parameters (a customer's
    # number, a party's) into every log line and traceback that shows it.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}, **kwargs)
        _sqlite_pragmas(engine)
        _lock_waits_past_deadline(engine)
        return engine
    engine = create_async_engine(url, **kwargs)
    _replace_dropped(engine)
    _lock_waits_past_deadline(engine)
    return engine


def _lock_waits_past_deadline(engine: AsyncEngine) -> None:
    """A lock wait the deadline bounded (core/deadline.py: PostgreSQL's lock_timeout, SQLite's
    busy timeout) that ran out is DeadlineExceeded, on every path to the database (a transaction,
    a plain session, a read): the statement did nothing, its transaction rolls back."""

    @event.listens_for(engine.sync_engine, "handle_error")
    def _translate(context: ExceptionContext) -> None:
        if (late := deadline_passed(context.sqlalchemy_exception)) is not None:
            raise late from None


# A pooled connection unused this long is pinged before it is handed out, and given this long to
# answer (see _replace_dropped).
PING_IDLE_S = 5.0
PING_TIMEOUT_S = 2.0


def _replace_dropped(engine: AsyncEngine) -> None:
    """A connection the server dropped is replaced at checkout, not used to fail a unit of work.

    Dropped with a goodbye (a restart, pg_terminate_backend, a failover, PostgreSQL's or
    PgBouncer's idle timeouts): the socket is closed, which asyncpg has seen by the time the
    connection is handed out, for free. Dropped silently (a NAT or firewall forgetting the
    connection, a host gone): only a round trip tells, so a connection idle PING_IDLE_S or more
    is pinged first (a simple query, PING_TIMEOUT_S to answer). SQLAlchemy's pool_pre_ping pings
    every checkout (BEGIN, ``;``, ROLLBACK: three round trips): +0.2-0.3 ms CPU, 35-50 % more per
    reservation (docs/BENCHMARKS.md, "Dead connections"); a busy connection is in use far more
    often than every 5 s. Raising DisconnectionError makes the pool discard the connection and
    hand out another (up to three tries, then a new one).
    """

    @event.listens_for(engine.sync_engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if dbapi_connection.driver_connection.is_closed():
            raise DisconnectionError("the server closed the connection")
        if time.monotonic() - record.info.get(_USED_AT, 0.0) >= PING_IDLE_S:
            # ";" as a simple query: one message, no prepared statement (PgBouncer-safe), and a
            # time-out of its own: a silently dropped connection never answers.
            ping = dbapi_connection.driver_connection.execute(";", timeout=PING_TIMEOUT_S)
            try:
                await_only(ping)  # in the pool's greenlet, as SQLAlchemy's own pre-ping
            except Exception as exc:
                # Closed at once, no goodbye to wait for (the pool's own close would try one).
                dbapi_connection.driver_connection.terminate()
                raise DisconnectionError("the connection did not answer a ping") from exc

    @event.listens_for(engine.sync_engine, "checkin")
    def _checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_USED_AT] = time.monotonic()

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(_dbapi_connection: Any, record: Any) -> None:
        record.info[_USED_AT] = time.monotonic()


_USED_AT = "airgate_used_at"


def postgres_options(settings: Settings) -> dict[str, Any]:
    """The engine's pool and its connections' limits, from the ``AIRGATE_DB_*`` settings.

    * pool_size should cover the steady concurrency and the overflow is only a margin for bursts:
      an overflow connection is closed when it is returned while pool_size connections are idle,
      so a steady load above pool_size reconnects all the time (with 20 + 20: 160-210 connects per
      10 s at 32 clients and 13 % fewer reservations/s, docs/BENCHMARKS.md).
    * A connection the server dropped is replaced at checkout (:func:`_replace_dropped`). LIFO:
      the few connections a quiet process uses stay warm, the others idle (and may be closed by
      the server's ``idle_session_timeout`` or PgBouncer's: the checkout notices).
    * Every limit is client-side (asyncpg's connect and command timeouts), so nothing is sent in
      the startup packet or per transaction: it works through PgBouncer as directly. A statement
      waiting on a row lock is cancelled by the same timeout. A timeout raises TimeoutError, which
      core/stores.py makes StoreUnavailable, like a pool that has no connection to give.
    """
    return {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout_s,
        "pool_use_lifo": True,
        "connect_args": connect_args(settings),
    }


def connect_args(settings: Settings) -> dict[str, Any]:
    """asyncpg's ``connect`` arguments (SQLAlchemy's adapter takes the two prepared-statement ones
    for itself): timeouts, and behind PgBouncer no prepared statement that outlives its
    transaction (:func:`pgbouncer_args`)."""
    args: dict[str, Any] = {
        "timeout": settings.db_connect_timeout_s,
        "command_timeout": settings.db_timeout_s or None,
    }
    return args | (pgbouncer_args() if settings.db_pgbouncer else {})


def pgbouncer_args() -> dict[str, Any]:
    """PgBouncer in transaction pooling mode (1.18: no prepared statements of its own) gives each
    transaction whichever server connection is free, so a statement prepared by name on one is
    unknown on the next, and two clients' ``__asyncpg_stmt_1__`` collide. So no named statement
    at all: asyncpg's cache off, SQLAlchemy's off, and the name SQLAlchemy's asyncpg dialect lets
    us choose for the statements it prepares is the empty one. Its docs suggest unique names; but
    a uniquely named statement stays on the server connection it was parsed on until that closes
    (asyncpg's Close for it goes wherever the next transaction runs), one per statement run.
    An unnamed statement is replaced by the next; asyncpg parses it again in the same message as
    its Bind and Execute when its cache is off, so each statement runs before one Sync, on one
    server connection (docs/DECISIONS.md, "PgBouncer: unnamed statements")."""
    return {
        "statement_cache_size": 0,
        "prepared_statement_cache_size": 0,
        "prepared_statement_name_func": str,  # str() == "": asyncpg's unnamed statement
    }


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
        if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return  # a lone read (Lookups.first): WAL gives it a snapshot, no lock to wait for
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

    # A lone read: on SQLite no BEGIN IMMEDIATE, so a start-up never queues behind a writer.
    async with engine.connect() as conn:
        reader = await conn.execution_options(isolation_level="AUTOCOMMIT")
        return await reader.run_sync(_rev)


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
    between uses, and asking again is safe. The connections take the engine's ``connect_args``
    (its time limits, PgBouncer's unnamed statements); a time-out is StoreUnavailable at once,
    not asked again through SQLAlchemy (it would wait as long), and an idle connection the
    server closed is dropped when it is next taken.
    """

    def __init__(
        self, engine: AsyncEngine, *, size: int, connect_args: dict[str, Any] | None = None
    ) -> None:
        self._engine = engine
        postgresql = engine.dialect.name == "postgresql"
        self._size = size if postgresql else 0
        self._dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        # The engine's timeouts and PgBouncer's needs, less what only SQLAlchemy's adapter reads.
        self._connect_args = {
            name: value
            for name, value in (connect_args or {}).items()
            if not name.startswith("prepared_statement_")
        }
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
            except TimeoutError as exc:  # the server is slow: asking again would wait as long
                self._drop(conn)
                raise StoreUnavailable(store="database", detail="TimeoutError") from exc
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
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():  # the server did not drop it meanwhile (no I/O to know)
                return conn
            self._count -= 1
        if self._closed or self._count >= self._size:
            return None
        import asyncpg  # type: ignore[import-untyped]

        self._count += 1
        try:
            return await asyncpg.connect(self._dsn, **self._connect_args)
        except TimeoutError as exc:  # SQLAlchemy's path would wait as long again
            self._count -= 1
            raise StoreUnavailable(store="database", detail="TimeoutError") from exc
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
