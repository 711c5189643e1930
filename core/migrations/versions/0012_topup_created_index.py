"""topup: an index by creation time

Reconciliation reads a local day's top-ups in keyset pages of (created_at, id); without this
index each page scans the table.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 08:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_topup_created', 'topup', ['created_at', 'id'])


def downgrade() -> None:
    op.drop_index('ix_topup_created', table_name='topup')
