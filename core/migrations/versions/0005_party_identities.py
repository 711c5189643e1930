"""party identities: a party's identities on channels in one table

Party.telegram_user_id and Party.telegram_blocked become rows of party_identity (channel
'telegram', the user id as text, blocked); a new channel adds rows, not a column of party. The
downgrade puts the Telegram links back on party (identities on other channels have no column to
go back to and are dropped with the table).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TELEGRAM = 'telegram'


def upgrade() -> None:
    identity = op.create_table('party_identity',
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('external_id', sa.String(length=64), nullable=False),
    sa.Column('party_id', sa.Integer(), nullable=False),
    sa.Column('blocked', sa.Boolean(), nullable=False),
    sa.Column('linked_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['party_id'], ['party.id'], ),
    sa.PrimaryKeyConstraint('channel', 'external_id'),
    sa.UniqueConstraint('party_id', 'channel')
    )
    assert identity is not None
    party = sa.table(
        'party',
        sa.column('id', sa.Integer()),
        sa.column('telegram_user_id', sa.BigInteger()),
        sa.column('telegram_blocked', sa.Boolean()),
    )
    linked = sa.select(
        sa.literal(TELEGRAM, sa.String(16)),
        sa.cast(party.c.telegram_user_id, sa.String(64)),
        party.c.id,
        party.c.telegram_blocked,
        sa.func.current_timestamp(),
    ).where(party.c.telegram_user_id.is_not(None))
    op.execute(
        identity.insert().from_select(
            ['channel', 'external_id', 'party_id', 'blocked', 'linked_at'], linked
        )
    )
    with op.batch_alter_table('party', schema=None) as batch_op:
        batch_op.drop_column('telegram_blocked')
        batch_op.drop_column('telegram_user_id')


def downgrade() -> None:
    with op.batch_alter_table('party', schema=None) as batch_op:
        batch_op.add_column(sa.Column('telegram_user_id', sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column('telegram_blocked', sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.create_unique_constraint('party_telegram_user_id_key', ['telegram_user_id'])
    party = sa.table(
        'party',
        sa.column('id', sa.Integer()),
        sa.column('telegram_user_id', sa.BigInteger()),
        sa.column('telegram_blocked', sa.Boolean()),
    )
    identity = sa.table(
        'party_identity',
        sa.column('channel', sa.String()),
        sa.column('external_id', sa.String()),
        sa.column('party_id', sa.Integer()),
        sa.column('blocked', sa.Boolean()),
    )
    of_party = sa.and_(identity.c.party_id == party.c.id, identity.c.channel == TELEGRAM)
    op.execute(
        party.update().values(
            telegram_user_id=sa.select(sa.cast(identity.c.external_id, sa.BigInteger()))
            .where(of_party)
            .scalar_subquery(),
            telegram_blocked=sa.select(identity.c.blocked).where(of_party).scalar_subquery(),
        ).where(sa.select(identity.c.party_id).where(of_party).exists())
    )
    op.drop_table('party_identity')
