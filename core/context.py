"""The resources one process shares, built once by an entry point and passed down."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core import deadline
from core.catalog_snapshot import CatalogCache
from core.db import (
    Lookups,
    connect_args,
    make_engine,
    make_sessionmaker,
    postgres_options,
    transaction,
)
from core.errors import NotFound
from core.hot_rows import PayerGates
from core.ledger import Ledger
from core.providers import registry as providers
from core.providers.port import AirtimeProvider
from core.security import PinHasher, load_pepper
from core.settings import Settings
from core.stores import database_errors


@dataclass(frozen=True, slots=True)
class Core:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    ledger: Ledger
    pins: PinHasher
    catalog: CatalogCache
    # One-row reads off the pool's path: the first hop's who is calling (core.services.callers).
    lookups: Lookups
    # The aggregator accounts (AIRGATE_PROVIDERS, or the one of AIRGATE_PROVIDER) by name, for
    # a look-up outside the worker (a support case asks the one holding the top-up); each one's
    # connection pool opens on first use.
    providers: dict[str, AirtimeProvider]
    # Money steps of one payer queue here, not on its row in the database (core/hot_rows.py).
    gates: PayerGates

    @property
    def provider(self) -> AirtimeProvider:
        """The first declared account's adapter."""
        return next(iter(self.providers.values()))

    def provider_of(self, account: str | None) -> AirtimeProvider:
        """The adapter of the account holding a top-up (``topup.provider``; None, a row from
        before routing: the first declared); NotFound if that account is no longer configured."""
        if account is None:
            return self.provider
        if (found := self.providers.get(account)) is None:
            raise NotFound(kind="aggregator account", key=account)
        return found

    def transaction(self) -> AbstractAsyncContextManager[AsyncSession]:
        """``async with core.transaction() as session``: commit on success, roll back on error;
        a database that cannot be reached raises StoreUnavailable (core/stores.py)."""
        return database_errors(transaction(self.sessions))

    def money(
        self, *, payer: int | None = None, sets_lock_timeout: bool = False
    ) -> AbstractAsyncContextManager[AsyncSession]:
        """``async with core.money(payer=id) as session``: a transaction that moves money.

        After the payer's turn in its queue (``payer``: whose stock or cash it spends; None, no
        queue) and, under a deadline (core/deadline.py), only with enough of it left: else
        DeadlineExceeded or Busy, before anything is written. Once it has begun it is not
        cancelled; a lock it waits for longer than the deadline allows rolls it back whole.
        ``sets_lock_timeout``: the block's first statement sets PostgreSQL's ``lock_timeout``
        itself (:meth:`Deadline.lock_timeout`), sparing a round trip on the hot path.
        """
        return _money(self, payer, sets_lock_timeout=sets_lock_timeout)


# Bounds this transaction's waits for a row lock; a value for set_config, not SQL text.
_LOCK_TIMEOUT = text("SELECT set_config('lock_timeout', :wait, true)")


@asynccontextmanager
async def _money(
    core: Core, payer: int | None, *, sets_lock_timeout: bool
) -> AsyncIterator[AsyncSession]:
    budget = deadline.current()
    queue = nullcontext() if payer is None else core.gates.turn(payer)
    async with queue, core.transaction() as session:
        if budget is not None:
            budget.check()
            # A pooled connection (on SQLite its write lock, waited for within the deadline:
            # core/db.py) while the hop's timer may still cancel the wait.
            await session.connection()
            if core.engine.dialect.name == "postgresql" and not sets_lock_timeout:
                await session.execute(_LOCK_TIMEOUT, {"wait": budget.lock_timeout()})
            budget.start_money()
        yield session


@asynccontextmanager
async def open_core(settings: Settings) -> AsyncIterator[Core]:
    url = settings.effective_database_url
    engine = make_engine(url, **({} if url.startswith("sqlite") else postgres_options(settings)))
    lookups = Lookups(
        engine, size=settings.db_lookup_connections, connect_args=connect_args(settings)
    )
    adapters = {a.name: providers.build(settings, account=a) for a in settings.accounts()}
    try:
        pepper = load_pepper(
            configured=settings.pin_pepper.get_secret_value(), var_dir=settings.var_dir
        )
        sessions = make_sessionmaker(engine)
        yield Core(
            settings=settings,
            engine=engine,
            sessions=sessions,
            ledger=Ledger(engine),
            pins=PinHasher(pepper),
            catalog=CatalogCache(sessions),
            lookups=lookups,
            providers=adapters,
            gates=PayerGates(max_waiting=settings.hot_row_queue),
        )
    finally:
        for adapter in adapters.values():
            await adapter.close()
        await lookups.close()
        await engine.dispose()
