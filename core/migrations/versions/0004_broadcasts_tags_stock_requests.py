"""broadcasts tags stock requests

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 19:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('broadcast',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('party_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=96), nullable=False),
    sa.Column('text', sa.String(length=800), nullable=False),
    sa.Column('audience', sa.String(length=80), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('progress_chat_id', sa.BigInteger(), nullable=True),
    sa.Column('progress_message_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['party_id'], ['party.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('broadcast', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_broadcast_party_id'), ['party_id'], unique=False)

    op.create_table('party_tag',
    sa.Column('party_id', sa.Integer(), nullable=False),
    sa.Column('tag', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['party_id'], ['party.id'], ),
    sa.PrimaryKeyConstraint('party_id', 'tag')
    )
    with op.batch_alter_table('party_tag', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_party_tag_tag'), ['tag'], unique=False)

    op.create_table('stock_request',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('buyer_id', sa.Integer(), nullable=False),
    sa.Column('seller_id', sa.Integer(), nullable=False),
    sa.Column('operator_code', sa.String(length=32), nullable=False),
    sa.Column('face_minor', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['buyer_id'], ['party.id'], ),
    sa.ForeignKeyConstraint(['operator_code'], ['operator.code'], ),
    sa.ForeignKeyConstraint(['seller_id'], ['party.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('stock_request', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stock_request_buyer_id'), ['buyer_id'], unique=False)
        batch_op.create_index('ix_stock_request_seller_state', ['seller_id', 'state'], unique=False)

    op.create_table('broadcast_recipient',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('broadcast_id', sa.Integer(), nullable=False),
    sa.Column('party_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('recipient', sa.String(length=32), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('detail', sa.String(length=200), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['broadcast_id'], ['broadcast.id'], ),
    sa.ForeignKeyConstraint(['party_id'], ['party.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('broadcast_id', 'party_id')
    )
    with op.batch_alter_table('broadcast_recipient', schema=None) as batch_op:
        batch_op.create_index(
            'ix_broadcast_recipient_state', ['broadcast_id', 'state', 'id'], unique=False
        )

    with op.batch_alter_table('party', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('telegram_blocked', sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column('region', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('low_stock_minor', sa.BigInteger(), nullable=True))
        batch_op.create_index(batch_op.f('ix_party_region'), ['region'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('party', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_party_region'))
        batch_op.drop_column('low_stock_minor')
        batch_op.drop_column('region')
        batch_op.drop_column('telegram_blocked')

    with op.batch_alter_table('broadcast_recipient', schema=None) as batch_op:
        batch_op.drop_index('ix_broadcast_recipient_state')

    op.drop_table('broadcast_recipient')
    with op.batch_alter_table('stock_request', schema=None) as batch_op:
        batch_op.drop_index('ix_stock_request_seller_state')
        batch_op.drop_index(batch_op.f('ix_stock_request_buyer_id'))

    op.drop_table('stock_request')
    with op.batch_alter_table('party_tag', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_party_tag_tag'))

    op.drop_table('party_tag')
    with op.batch_alter_table('broadcast', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_broadcast_party_id'))

    op.drop_table('broadcast')
