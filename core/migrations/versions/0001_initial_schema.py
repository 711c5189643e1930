"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-24 18:57:53.959058
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('audit_event',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=48), nullable=False),
    sa.Column('subject_party_id', sa.Integer(), nullable=True),
    sa.Column('reference', sa.String(length=96), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_event_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_event_subject_party_id'), ['subject_party_id'], unique=False)

    op.create_table('operator',
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('carrier_names', sa.String(length=200), nullable=False),
    sa.Column('provider_operator_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('code')
    )
    with op.batch_alter_table('operator', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_operator_country'), ['country'], unique=False)

    op.create_table('party',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('msisdn', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('telegram_user_id', sa.BigInteger(), nullable=True),
    sa.Column('pin_hash', sa.String(length=160), nullable=True),
    sa.Column('pin_failed_attempts', sa.Integer(), nullable=False),
    sa.Column('pin_locked', sa.Boolean(), nullable=False),
    sa.Column('credit_limit_minor', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['party.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('telegram_user_id')
    )
    with op.batch_alter_table('party', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_party_msisdn'), ['msisdn'], unique=True)
        batch_op.create_index(batch_op.f('ix_party_parent_id'), ['parent_id'], unique=False)

    op.create_table('account',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=96), nullable=False),
    sa.Column('party_id', sa.Integer(), nullable=True),
    sa.Column('asset', sa.String(length=48), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('is_system', sa.Boolean(), nullable=False),
    sa.Column('balance_minor', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('is_system OR balance_minor >= 0', name='account_no_overdraft'),
    sa.ForeignKeyConstraint(['party_id'], ['party.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_account_party_id'), ['party_id'], unique=False)

    op.create_table('agreement',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seller_id', sa.Integer(), nullable=False),
    sa.Column('buyer_id', sa.Integer(), nullable=False),
    sa.Column('operator_code', sa.String(length=32), nullable=False),
    sa.Column('discount_bps', sa.Integer(), nullable=False),
    sa.Column('commission_bps', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['buyer_id'], ['party.id'], ),
    sa.ForeignKeyConstraint(['seller_id'], ['party.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('seller_id', 'buyer_id', 'operator_code')
    )
    with op.batch_alter_table('agreement', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agreement_buyer_id'), ['buyer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_agreement_seller_id'), ['seller_id'], unique=False)

    op.create_table('number_prefix',
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('operator_code', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['operator_code'], ['operator.code'], ),
    sa.PrimaryKeyConstraint('prefix')
    )
    op.create_table('product',
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('operator_code', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('min_minor', sa.BigInteger(), nullable=True),
    sa.Column('max_minor', sa.BigInteger(), nullable=True),
    sa.Column('step_minor', sa.BigInteger(), nullable=True),
    sa.Column('price_minor', sa.BigInteger(), nullable=True),
    sa.Column('validity_days', sa.Integer(), nullable=True),
    sa.Column('data_mb', sa.Integer(), nullable=True),
    sa.Column('sms_count', sa.Integer(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['operator_code'], ['operator.code'], ),
    sa.PrimaryKeyConstraint('code')
    )
    with op.batch_alter_table('product', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_product_operator_code'), ['operator_code'], unique=False)

    op.create_table('reservation',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('party_id', sa.Integer(), nullable=False),
    sa.Column('asset', sa.String(length=48), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['party_id'], ['party.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('reservation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reservation_party_id'), ['party_id'], unique=False)

    op.create_table('transfer',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('idempotency_key', sa.String(length=160), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('asset', sa.String(length=48), nullable=False),
    sa.Column('debit_account_id', sa.Integer(), nullable=False),
    sa.Column('credit_account_id', sa.Integer(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('reference', sa.String(length=96), nullable=True),
    sa.Column('memo', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount_minor > 0', name='transfer_amount_positive'),
    sa.ForeignKeyConstraint(['credit_account_id'], ['account.id'], ),
    sa.ForeignKeyConstraint(['debit_account_id'], ['account.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key')
    )
    with op.batch_alter_table('transfer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transfer_credit_account_id'), ['credit_account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_transfer_debit_account_id'), ['debit_account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_transfer_reference'), ['reference'], unique=False)



    _make_transfers_immutable()


def _make_transfers_immutable() -> None:
    """Transfers are corrected by new transfers, never edited: the database refuses both."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION transfer_immutable() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'transfers are immutable'; END $$"
        )
        op.execute(
            "CREATE TRIGGER transfer_immutable BEFORE UPDATE OR DELETE ON transfer "
            "FOR EACH ROW EXECUTE FUNCTION transfer_immutable()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER transfer_no_{event.lower()} BEFORE {event} ON transfer "
                "BEGIN SELECT RAISE(ABORT, 'transfers are immutable'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS transfer_immutable ON transfer")
        op.execute("DROP FUNCTION IF EXISTS transfer_immutable()")
    with op.batch_alter_table('transfer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_transfer_reference'))
        batch_op.drop_index(batch_op.f('ix_transfer_debit_account_id'))
        batch_op.drop_index(batch_op.f('ix_transfer_credit_account_id'))

    op.drop_table('transfer')
    with op.batch_alter_table('reservation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reservation_party_id'))

    op.drop_table('reservation')
    with op.batch_alter_table('product', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_product_operator_code'))

    op.drop_table('product')
    op.drop_table('number_prefix')
    with op.batch_alter_table('agreement', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agreement_seller_id'))
        batch_op.drop_index(batch_op.f('ix_agreement_buyer_id'))

    op.drop_table('agreement')
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_account_party_id'))

    op.drop_table('account')
    with op.batch_alter_table('party', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_party_parent_id'))
        batch_op.drop_index(batch_op.f('ix_party_msisdn'))

    op.drop_table('party')
    with op.batch_alter_table('operator', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_operator_country'))

    op.drop_table('operator')
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_event_subject_party_id'))
        batch_op.drop_index(batch_op.f('ix_audit_event_at'))

    op.drop_table('audit_event')
