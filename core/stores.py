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

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError

from core import deadline
from core.errors import DeadlineExceeded, StoreUnavailable

T = TypeVar("T")


def database_down(exc: BaseException) -> StoreUnavailable | None:
    """``exc`` as StoreUnavailable if it says the database cannot be reached, else None."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return StoreUnavailable(store="database", detail=type(exc.orig).__name__)
    if isinstance(exc, OSError):  # refused, reset, timed out: before SQLAlchemy wraps anything
        return StoreUnavailable(store="database", detail=type(exc).__name__)
    return None


def lock_wait_ran_out(exc: BaseException) -> bool:
    """A wait for a lock gave up: PostgreSQL's ``lock_timeout`` (SQLSTATE 55P03), SQLite's busy
    timeout ("database is locked"). The statement and its transaction did nothing."""
    if not isinstance(exc, DBAPIError):
        return False
    if getattr(exc.orig, "sqlstate", None) == "55P03":
        return True
    return "database is locked" in str(exc.orig)


def redis_down(exc: BaseException) -> StoreUnavailable | None:
    """``exc`` as StoreUnavailable if it says Redis cannot be reached, else None."""
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError):
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
        budget = deadline.current()
        if budget is not None and lock_wait_ran_out(exc):  # a wait the deadline bounded
            raise DeadlineExceeded(budget_s=budget.budget_s) from None
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
