"""settlement runs (immutable) and daily report sends; transfers indexed by date

settlement_run: one period settled between a seller and its buyer, never updated or deleted (the
database refuses both, as for transfers); report_send: a daily report claimed before it is sent,
once per party and day. An index on transfer.created_at serves reports and settlements by date.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('settlement_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('seller_id', sa.Integer(), nullable=False),
    sa.Column('buyer_id', sa.Integer(), nullable=False),
    sa.Column('through_transfer_id', sa.BigInteger(), nullable=False),
    sa.Column('previous_id', sa.Integer(), nullable=True),
    sa.Column('terms', sa.Text(), nullable=False),
    sa.Column('amount_due_minor', sa.BigInteger(), nullable=False),
    sa.Column('csv_sha256', sa.String(length=64), nullable=False),
    sa.Column('pdf_sha256', sa.String(length=64), nullable=False),
    sa.Column('created_by', sa.String(length=60), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['buyer_id'], ['party.id'], ),
    sa.ForeignKeyConstraint(['seller_id'], ['party.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('period', 'seller_id', 'buyer_id')
    )
    op.create_index('ix_settlement_run_buyer_id', 'settlement_run', ['buyer_id'], unique=False)
    op.create_index('ix_settlement_run_seller_id', 'settlement_run', ['seller_id'], unique=False)
    op.create_table('report_send',
    sa.Column('party_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('via', sa.String(length=10), nullable=False),
    sa.Column('state', sa.String(length=8), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['party_id'], ['party.id'], ),
    sa.PrimaryKeyConstraint('party_id', 'day')
    )
    op.create_index('ix_report_send_state', 'report_send', ['state'], unique=False)
    op.create_index('ix_transfer_created_at', 'transfer', ['created_at'], unique=False)
    _make_runs_immutable()


def _make_runs_immutable() -> None:
    """A settled period is never edited: corrections land in the next run."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION settlement_run_immutable() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'settlement runs are immutable'; END $$"
        )
        op.execute(
            "CREATE TRIGGER settlement_run_immutable BEFORE UPDATE OR DELETE ON settlement_run "
            "FOR EACH ROW EXECUTE FUNCTION settlement_run_immutable()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER settlement_run_no_{event.lower()} BEFORE {event} "
                "ON settlement_run BEGIN SELECT RAISE(ABORT, 'settlement runs are immutable'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS settlement_run_immutable ON settlement_run")
        op.execute("DROP FUNCTION IF EXISTS settlement_run_immutable()")
    op.drop_index('ix_transfer_created_at', table_name='transfer')
    op.drop_index('ix_report_send_state', table_name='report_send')
    op.drop_table('report_send')
    op.drop_index('ix_settlement_run_seller_id', table_name='settlement_run')
    op.drop_index('ix_settlement_run_buyer_id', table_name='settlement_run')
    op.drop_table('settlement_run')
