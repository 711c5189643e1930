"""Driver errors that mean "the store is not there", as AirGate's own :class:`StoreUnavailable`.

A refused connection (the server is down), a connection the server dropped (SQLAlchemy marks it
``connection_invalidated``), a time-out on the socket: the database's and Redis' drivers each say it
their own way; services and channels see one error. Everything else (a constraint, a trigger's
refusal, a script error) passes through unchanged: the code that expects it catches it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import TypeVar

from redis.exceptions import ClusterDownError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from core import deadline
from core.errors import DeadlineExceeded, StoreUnavailable

T = TypeVar("T")


# SQLSTATEs of a server that is there but takes no more work now: too many connections (53300),
# starting up or shutting down (57P03), our backend terminated by an operator (57P01).
_BUSY_SQLSTATES = frozenset({"53300", "57P03", "57P01"})


def database_down(exc: BaseException) -> StoreUnavailable | None:
    """``exc`` as StoreUnavailable if it says the database cannot be reached or take the work
    now (nor within the timeouts of core/db.py), else None."""
    if isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or getattr(exc.orig, "sqlstate", None) in _BUSY_SQLSTATES
    ):
        return StoreUnavailable(store="database", detail=_driver_error_name(exc))
    if isinstance(exc, PoolTimeout):  # every pooled connection stayed busy for pool_timeout
        return StoreUnavailable(store="database", detail="pool timeout")
    # Refused, reset, timed out (TimeoutError is an OSError: asyncpg's connect and command
    # timeouts), before SQLAlchemy wraps anything.
    if isinstance(exc, OSError):
        return StoreUnavailable(store="database", detail=type(exc).__name__)
    if getattr(exc, "sqlstate", None) in _BUSY_SQLSTATES:  # asyncpg's own, at connect
        return StoreUnavailable(store="database", detail=type(exc).__name__)
    return None


# SQLSTATEs of a login refused for good: no such role or a wrong password (28000, 28P01), no such
# database (3D000). Trying again will not help; the URL or the server's roles need changing.
_REFUSED_LOGIN_SQLSTATES = frozenset({"28000", "28P01", "3D000"})


def login_refused(exc: BaseException) -> str | None:
    """The server's reason (its first line) if ``exc`` says it refused the login, else None.
    PostgreSQL names the role or database there, never a password."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if getattr(orig, "sqlstate", None) not in _REFUSED_LOGIN_SQLSTATES:
        return None
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__


def _driver_error_name(exc: DBAPIError) -> str:
    """The driver's name for the error (asyncpg's TooManyConnectionsError), not the DB-API's."""
    return type(getattr(exc, "driver_exception", None) or exc.orig).__name__


def lock_wait_ran_out(exc: BaseException | None) -> bool:
    """A wait for a lock gave up: PostgreSQL's ``lock_timeout`` (SQLSTATE 55P03), SQLite's busy
    timeout ("database is locked"). The statement and its transaction did nothing."""
    if not isinstance(exc, DBAPIError):
        return False
    if getattr(exc.orig, "sqlstate", None) == "55P03":
        return True
    return "database is locked" in str(exc.orig)


def deadline_passed(exc: BaseException | None) -> DeadlineExceeded | None:
    """``exc`` as DeadlineExceeded if it is a lock wait that the work's deadline bounded
    (core/deadline.py) and that ran out, else None. core/db.py says it for every statement
    SQLAlchemy runs; :func:`database_errors` for the ledger's own asyncpg calls too."""
    budget = deadline.current()
    if budget is None or not lock_wait_ran_out(exc):
        return None
    return deadline.refused(DeadlineExceeded(budget_s=budget.budget_s))


_REDIS_AWAY = (RedisConnectionError, RedisTimeoutError, ClusterDownError, TryAgainError, OSError)


def redis_down(exc: BaseException) -> StoreUnavailable | None:
    """``exc`` as StoreUnavailable if it says Redis cannot be reached, else None. On a Redis
    Cluster also: the cluster is down (a node failed with no replica to take over) or a slot is
    moving (TRYAGAIN): both pass by themselves."""
    if isinstance(exc, _REDIS_AWAY):
        return StoreUnavailable(store="redis", detail=type(exc).__name__)
    return None


@asynccontextmanager
async def database_errors(unit: AbstractAsyncContextManager[T]) -> AsyncIterator[T]:
    """``unit`` (a transaction), with the database's "not there" errors as StoreUnavailable."""
    try:
        async with unit as value:
            yield value
    except StoreUnavailable:
        raise
    except Exception as exc:
        if (down := database_down(exc)) is not None:
            raise down from exc
        if (late := deadline_passed(exc)) is not None:
            raise late from None
        raise


@contextmanager
def redis_errors() -> Iterator[None]:
    """Around calls to Redis: its "not there" errors as StoreUnavailable."""
    try:
        yield
    except StoreUnavailable:
        raise
    except Exception as exc:
        if (down := redis_down(exc)) is not None:
            raise down from exc
        raise
