"""topup provider account: which aggregator account holds a top-up, and which it went through

With routing (core/routing/) a top-up may go to one of several aggregator accounts. ``provider``
names the account that holds it (it may have been applied there: every status query goes there,
never elsewhere); ``providers_tried`` lists the accounts it left with a definite no (refused,
refused, failed, not sent), in order. Both are NULL on the rows of before: a NULL ``provider`` on a
top-up that was sent means the first declared account, the only one there was.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# ADD/DROP COLUMN in place, no batch copy, on SQLite too (3.35 and later), as 0006 and 0007 do.


def upgrade() -> None:
    op.add_column('topup', sa.Column('provider', sa.String(length=32), nullable=True))
    op.add_column('topup', sa.Column('providers_tried', sa.String(length=200), nullable=True))


def downgrade() -> None:
    op.drop_column('topup', 'providers_tried')
    op.drop_column('topup', 'provider')
