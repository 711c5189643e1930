"""Migration 0007 renames how a notice goes (``channel``) to ``via`` on notification and
broadcast_recipient, rows kept, and its downgrade renames it back (on SQLite and PostgreSQL)."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import text

from core.context import Core
from core.db import alembic_config, downgrade, upgrade

REVISION = "0007"
# A retailer, a broadcast to it and a notice to it (columns every revision here has).
ROWS = [
    """INSERT INTO party (id, role, name, msisdn, status, language,
        pin_failed_attempts, pin_locked, credit_limit_minor, created_at)
        VALUES (1, 'retailer', 'Shop', '+254700000001', 'active', 'en', 0, FALSE, 0,
        CURRENT_TIMESTAMP)""",
    """INSERT INTO notification (id, key, party_id, channel, recipient, text, state, attempts,
        created_at) VALUES (1, 'T1:retailer', 1, 'telegram', '4242', 'Sent', 'pending', 0,
        CURRENT_TIMESTAMP), (2, 'T1:customer', NULL, 'sms', '+254700000002', 'Got it', 'sent', 1,
        CURRENT_TIMESTAMP)""",
    """INSERT INTO broadcast (id, party_id, key, text, audience, state, total, created_at)
        VALUES (1, 1, 'b1', 'Hello', 'all', 'sending', 1, CURRENT_TIMESTAMP)""",
    """INSERT INTO broadcast_recipient (id, broadcast_id, party_id, channel, recipient, state,
        attempts) VALUES (1, 1, 1, 'sms', '+254700000001', 'pending', 0)""",
]


async def _rows(core: Core, query: str) -> list[tuple[object, ...]]:
    async with core.engine.connect() as conn:
        return [tuple(row) for row in await conn.execute(text(query))]


def _notices(column: str) -> str:
    return f"SELECT id, {column}, recipient FROM notification ORDER BY id"


def _recipients(column: str) -> str:
    return f"SELECT id, party_id, {column}, recipient FROM broadcast_recipient ORDER BY id"


async def test_channel_becomes_via_and_back(core: Core) -> None:
    below = ScriptDirectory.from_config(alembic_config()).get_revision(REVISION).down_revision
    assert isinstance(below, str)
    notices = [(1, "telegram", "4242"), (2, "sms", "+254700000002")]
    recipients = [(1, 1, "sms", "+254700000001")]
    try:
        await downgrade(core.engine, below)
        async with core.engine.begin() as conn:
            for statement in ROWS:
                await conn.execute(text(statement))
        await upgrade(core.engine, REVISION)
        assert await _rows(core, _notices("via")) == notices
        assert await _rows(core, _recipients("via")) == recipients
        await downgrade(core.engine, below)
        assert await _rows(core, _notices("channel")) == notices
        assert await _rows(core, _recipients("channel")) == recipients
    finally:
        await upgrade(core.engine)
