"""callbacks: a party's outcome-callback endpoint and the outbox of deliveries to it

callback_endpoint (one per party: URL, the seed its signing secret is derived from, the previous
seed during a rotation's grace) and callback_delivery (one row per final top-up and party told,
written in the transaction that made the top-up final; pending, delivered or given up).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('callback_endpoint',
    sa.Column('party_id', sa.Integer(), nullable=False),
    sa.Column('url', sa.String(length=2048), nullable=False),
    sa.Column('secret_seed', sa.String(length=64), nullable=False),
    sa.Column('previous_seed', sa.String(length=64), nullable=True),
    sa.Column('previous_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['party_id'], ['party.id'], ),
    sa.PrimaryKeyConstraint('party_id')
    )
    op.create_table('callback_delivery',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('event_id', sa.String(length=48), nullable=False),
    sa.Column('event_type', sa.String(length=32), nullable=False),
    sa.Column('party_id', sa.Integer(), nullable=False),
    sa.Column('topup_id', sa.String(length=32), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('retry_until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_status', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.String(length=200), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['party_id'], ['party.id'], ),
    sa.ForeignKeyConstraint(['topup_id'], ['topup.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id', 'party_id')
    )
    op.create_index('ix_callback_delivery_party_created', 'callback_delivery',
                    ['party_id', 'created_at'], unique=False)
    op.create_index('ix_callback_delivery_state_due', 'callback_delivery',
                    ['state', 'due_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_callback_delivery_state_due', table_name='callback_delivery')
    op.drop_index('ix_callback_delivery_party_created', table_name='callback_delivery')
    op.drop_table('callback_delivery')
    op.drop_table('callback_endpoint')
