"""Migrations from empty on both databases, and the models agree with them."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlmodel import SQLModel

from core.context import Core
from core.db import (
    alembic_config,
    current_revision,
    downgrade,
    ensure_migrated,
    head_revision,
    upgrade,
)


async def test_upgrade_from_empty_matches_the_models(core: Core, fresh_database: None) -> None:
    await upgrade(core.engine)  # idempotent on an up-to-date database
    assert await current_revision(core.engine) == head_revision()

    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))

    def tables(connection: Connection) -> set[str]:
        return set(inspect(connection).get_table_names())

    async with core.engine.connect() as conn:
        assert await conn.run_sync(diff) == []
        assert {
            "party",
            "account",
            "transfer",
            "reservation",
            "audit_event",
            "topup",
            "notification",
            "support_case",
        } <= await conn.run_sync(tables)


async def test_every_downgrade_runs_to_base_and_up_again(core: Core) -> None:
    """Each migration's downgrade, one step at a time down to an empty database (on PostgreSQL
    the run's shared database, migrated back to head before the test ends)."""
    from alembic.script import ScriptDirectory

    revisions = [s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()]
    assert revisions[0] == head_revision() and len(revisions) >= 4

    def tables(connection: Connection) -> set[str]:
        return set(inspect(connection).get_table_names()) - {"alembic_version"}

    try:
        for below in [*revisions[1:], "base"]:
            await downgrade(core.engine, below)
            assert await current_revision(core.engine) == (None if below == "base" else below)
        async with core.engine.connect() as conn:
            assert await conn.run_sync(tables) == set()
    finally:
        await upgrade(core.engine)
    assert await current_revision(core.engine) == head_revision()

    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))

    async with core.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_start_up_check_reads_past_a_writer_on_sqlite(core: Core) -> None:
    """A process's start-up check (``ensure_migrated``) never queues behind a write: another
    connection holds SQLite's write lock, and the check still answers at once (it waited out the
    60 s busy timeout behind BEGIN IMMEDIATE before)."""
    assert core.engine.url.database is not None
    holder = sqlite3.connect(core.engine.url.database, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        await asyncio.wait_for(ensure_migrated(core.engine), timeout=5)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
