"""The resources one process shares, built once by an entry point and passed down."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core.catalog_snapshot import CatalogCache
from core.db import Lookups, make_engine, make_sessionmaker, transaction
from core.errors import NotFound
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


@asynccontextmanager
async def open_core(settings: Settings) -> AsyncIterator[Core]:
    url = settings.effective_database_url
    pool = {"pool_size": settings.db_pool_size, "max_overflow": settings.db_max_overflow}
    engine = make_engine(url, **({} if url.startswith("sqlite") else pool))
    lookups = Lookups(engine, size=settings.db_lookup_connections)
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
        )
    finally:
        for adapter in adapters.values():
            await adapter.close()
        await lookups.close()
        await engine.dispose()
