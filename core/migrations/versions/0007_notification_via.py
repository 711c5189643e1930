"""notification via: how a notice goes is ``via``, not ``channel``

notification.channel and broadcast_recipient.channel ("telegram" | "sms") said how a message goes,
while "channel" elsewhere is where a conversation or a top-up came from (topup.channel keeps that
name). Both columns are renamed to ``via``; the downgrade renames them back. Rows are untouched.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-09 10:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ('notification', 'broadcast_recipient')

# ALTER TABLE ... RENAME COLUMN in place, no batch copy, on SQLite too (3.25 and later), as 0006
# does: a copy of a table would trip the foreign keys of the rows that name it.


def upgrade() -> None:
    for table in TABLES:
        op.alter_column(table, 'channel', new_column_name='via')


def downgrade() -> None:
    for table in TABLES:
        op.alter_column(table, 'via', new_column_name='channel')
