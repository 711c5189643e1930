"""Migration 0006 carries each operator's aggregator ids from columns to operator_provider rows,
and its downgrade carries Reloadly's back (on SQLite and PostgreSQL)."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import text

from core.context import Core
from core.db import alembic_config, downgrade, upgrade

REVISION = "0006"
OPERATORS = """INSERT INTO operator (code, country, name, currency, carrier_names,
    provider_operator_id, provider_bundle_operator_id) VALUES
    ('safaricom-ke', 'KE', 'Safaricom', 'KES', 'Safaricom', 1, 101),
    ('airtel-ke', 'KE', 'Airtel', 'KES', 'Airtel', 2, NULL),
    ('faiba-ke', 'KE', 'Faiba', 'KES', 'Faiba', NULL, NULL)"""
# A top-up the aggregator answered, with what it names (columns every revision here has).
TOPUP = [
    """INSERT INTO party (id, role, name, msisdn, status, language,
        pin_failed_attempts, pin_locked, credit_limit_minor, created_at)
        VALUES (1, 'retailer', 'Shop', '+254700000001', 'active', 'en', 0, FALSE, 0,
        CURRENT_TIMESTAMP)""",
    """INSERT INTO product (code, operator_code, kind, name, active)
        VALUES ('safaricom-ke:airtime', 'safaricom-ke', 'airtime', 'Airtime', TRUE)""",
    """INSERT INTO topup (id, party_id, msisdn, operator_code, product_code, kind, amount_minor,
        currency, channel, state, due_at, sends, checks, provider_txn_id, created_at)
        VALUES ('T1', 1, '+254700000002', 'safaricom-ke', 'safaricom-ke:airtime', 'airtime',
        5000, 'KES', 'test', 'delivered', CURRENT_TIMESTAMP, 1, 0, 4200000001,
        CURRENT_TIMESTAMP)""",
]
OLD_IDS = (
    "SELECT code, provider_operator_id, provider_bundle_operator_id FROM operator ORDER BY code"
)
REFS = "SELECT operator_code, provider, airtime_ref, bundle_ref FROM operator_provider ORDER BY 1"


async def _rows(core: Core, query: str) -> list[tuple[object, ...]]:
    async with core.engine.connect() as conn:
        return [tuple(row) for row in await conn.execute(text(query))]


async def test_operator_ids_move_to_rows_and_back(core: Core) -> None:
    below = ScriptDirectory.from_config(alembic_config()).get_revision(REVISION).down_revision
    assert isinstance(below, str)
    try:
        await downgrade(core.engine, below)
        async with core.engine.begin() as conn:
            for statement in [OPERATORS, *TOPUP]:
                await conn.execute(text(statement))
        await upgrade(core.engine, REVISION)
        assert await _rows(core, "SELECT provider_ref FROM topup") == [("4200000001",)]
        assert await _rows(core, REFS) == [
            ("airtel-ke", "reloadly", "2", None),
            ("safaricom-ke", "reloadly", "1", "101"),
        ]
        async with core.engine.begin() as conn:  # another aggregator's ids have no column to go to
            await conn.execute(
                text("INSERT INTO operator_provider VALUES ('faiba-ke', 'dtone', '77', NULL)")
            )
        await downgrade(core.engine, below)
        assert await _rows(core, OLD_IDS) == [
            ("airtel-ke", 2, None),
            ("faiba-ke", None, None),
            ("safaricom-ke", 1, 101),
        ]
        assert await _rows(core, "SELECT provider_txn_id FROM topup") == [(4200000001,)]
    finally:
        await upgrade(core.engine)
