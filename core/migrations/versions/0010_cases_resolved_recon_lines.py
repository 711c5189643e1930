"""support cases resolved; the aggregator's report staged for reconciliation

support_case gains what its resolution needs (how it ended, by whom, on what evidence), a
reference for a case about a transaction that is not ours, and when it went to the platform;
recon_line holds the aggregator's transactions a reconciliation pulled. Existing cases are open
or resolved as before, with empty evidence.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('support_case', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reference', sa.String(length=96), nullable=True))
        batch_op.add_column(sa.Column('resolution', sa.String(length=12), nullable=True))
        batch_op.add_column(sa.Column('resolved_by', sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column('evidence', sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
        batch_op.add_column(sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint('uq_support_case_reference', ['reference'])
        batch_op.create_index('ix_support_case_state_opened', ['state', 'opened_at'])
    op.create_table(
        'recon_line',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('provider', sa.String(length=32), nullable=False),
        sa.Column('provider_ref', sa.String(length=64), nullable=False),
        sa.Column('reference', sa.String(length=64), nullable=True),
        sa.Column('outcome', sa.String(length=10), nullable=False),
        sa.Column('amount_minor', sa.BigInteger(), nullable=True),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('operator_ref', sa.String(length=64), nullable=True),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('provider', 'provider_ref', name='uq_recon_line_provider_ref'),
    )
    op.create_index('ix_recon_line_reference', 'recon_line', ['reference'])
    op.create_index('ix_recon_line_provider_at', 'recon_line', ['provider', 'at'])


def downgrade() -> None:
    op.drop_table('recon_line')
    with op.batch_alter_table('support_case', schema=None) as batch_op:
        batch_op.drop_index('ix_support_case_state_opened')
        batch_op.drop_constraint('uq_support_case_reference', type_='unique')
        for column in ('escalated_at', 'evidence', 'resolved_by', 'resolution', 'reference'):
            batch_op.drop_column(column)
