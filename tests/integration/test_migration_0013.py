"""Migration 0013 adds which aggregator account holds a top-up (``provider``) and the accounts it
left (``providers_tried``), NULL on the rows of before, and its downgrade drops them with the rows
kept (on SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from core.context import Core
from core.db import alembic_config, downgrade, upgrade

REVISION = "0013"
ROWS = [
    """INSERT INTO party (id, role, name, msisdn, status, language,
        pin_failed_attempts, pin_locked, credit_limit_minor, created_at)
        VALUES (1, 'retailer', 'Shop', '+254700000001', 'active', 'en', 0, FALSE, 0,
        CURRENT_TIMESTAMP)""",
    """INSERT INTO operator (code, country, name, currency, carrier_names)
        VALUES ('safaricom-ke', 'KE', 'Safaricom', 'KES', 'Safaricom')""",
    """INSERT INTO product (code, operator_code, kind, name, active)
        VALUES ('safaricom-ke:airtime', 'safaricom-ke', 'airtime', 'Airtime', TRUE)""",
    """INSERT INTO topup (id, party_id, msisdn, operator_code, product_code, kind, amount_minor,
        currency, channel, state, due_at, sends, checks, created_at)
        VALUES ('T1', 1, '+254712345670', 'safaricom-ke', 'safaricom-ke:airtime', 'airtime',
        5000, 'KES', 'ussd', 'unknown', CURRENT_TIMESTAMP, 1, 2, CURRENT_TIMESTAMP)""",
]
TOPUP = "SELECT id, state, sends, checks FROM topup ORDER BY id"


async def _rows(core: Core, query: str) -> list[tuple[object, ...]]:
    async with core.engine.connect() as conn:
        return [tuple(row) for row in await conn.execute(text(query))]


async def test_provider_columns_come_null_and_go_with_rows_kept(core: Core) -> None:
    below = ScriptDirectory.from_config(alembic_config()).get_revision(REVISION).down_revision
    assert isinstance(below, str)
    try:
        await downgrade(core.engine, below)
        async with core.engine.begin() as conn:
            for statement in ROWS:
                await conn.execute(text(statement))
        await upgrade(core.engine, REVISION)
        assert await _rows(core, TOPUP) == [("T1", "unknown", 1, 2)]
        assert await _rows(core, "SELECT provider, providers_tried FROM topup") == [(None, None)]
        async with core.engine.begin() as conn:
            await conn.execute(
                text("UPDATE topup SET provider = 'alpha', providers_tried = 'beta:not_sent'")
            )
        await downgrade(core.engine, below)
        assert await _rows(core, TOPUP) == [("T1", "unknown", 1, 2)]
        with pytest.raises(DBAPIError):
            await _rows(core, "SELECT provider FROM topup")
    finally:
        await upgrade(core.engine)
