"""The resources one process shares, built once by an entry point and passed down."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core.catalog_snapshot import CatalogCache
from core.db import Lookups, make_engine, make_sessionmaker, transaction
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
    # The aggregator, for a look-up outside the worker (a support case asks it first); its
    # connection pool opens on first use.
    provider: AirtimeProvider

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
    provider = providers.build(settings)
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
            provider=provider,
        )
    finally:
        await provider.close()
        await lookups.close()
        await engine.dispose()
