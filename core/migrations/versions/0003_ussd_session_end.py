"""ussd session end

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('ussd_session_end',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('gateway', sa.String(length=24), nullable=False),
    sa.Column('session_id', sa.String(length=96), nullable=False),
    sa.Column('msisdn', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.String(length=200), nullable=True),
    sa.Column('hops', sa.Integer(), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=True),
    sa.Column('cost', sa.String(length=24), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ussd_session_end', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ussd_session_end_session_id'), ['session_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ussd_session_end', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ussd_session_end_session_id'))
    op.drop_table('ussd_session_end')
