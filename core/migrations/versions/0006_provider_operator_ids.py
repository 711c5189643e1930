"""provider operator ids: an operator's ids per aggregator; the aggregator's transaction id as text

Operator.provider_operator_id and provider_bundle_operator_id were Reloadly's (integer) ids as
columns of the operator. They become rows of operator_provider (operator, aggregator name →
airtime id, bundles id, as text: DT One's ids are integers, Ding's are codes), the existing ids
under 'reloadly'. topup.provider_txn_id (an integer) becomes provider_ref (text), for the same
reason.

The downgrade puts Reloadly's ids back on the operator; another aggregator's ids have no column
to go back to and are dropped, and it refuses a non-numeric transaction id rather than lose it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RELOADLY = 'reloadly'  # the adapter whose ids the old columns held

# Plain ALTER TABLE ADD/DROP COLUMN, no batch copy, on SQLite too (3.35 and later): a copy of
# operator or topup would trip the foreign keys of the rows that name them.


def upgrade() -> None:
    op.create_table('operator_provider',
    sa.Column('operator_code', sa.String(length=32), nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('airtime_ref', sa.String(length=64), nullable=True),
    sa.Column('bundle_ref', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['operator_code'], ['operator.code'], ),
    sa.PrimaryKeyConstraint('operator_code', 'provider')
    )
    op.execute(sa.text(
        "INSERT INTO operator_provider (operator_code, provider, airtime_ref, bundle_ref) "
        "SELECT code, :provider, CAST(provider_operator_id AS VARCHAR(64)), "
        "CAST(provider_bundle_operator_id AS VARCHAR(64)) FROM operator "
        "WHERE provider_operator_id IS NOT NULL OR provider_bundle_operator_id IS NOT NULL"
    ).bindparams(provider=RELOADLY))
    op.drop_column('operator', 'provider_bundle_operator_id')
    op.drop_column('operator', 'provider_operator_id')
    op.add_column('topup', sa.Column('provider_ref', sa.String(length=64), nullable=True))
    op.execute("UPDATE topup SET provider_ref = CAST(provider_txn_id AS VARCHAR(64))")
    op.drop_column('topup', 'provider_txn_id')


def downgrade() -> None:
    bind = op.get_bind()
    numeric = "~ '^[0-9]+$'" if bind.dialect.name == 'postgresql' else "NOT GLOB '*[^0-9]*'"
    odd = bind.execute(sa.text(
        f"SELECT count(*) FROM topup WHERE provider_ref IS NOT NULL "
        f"AND (provider_ref = '' OR NOT (provider_ref {numeric}))"
    )).scalar()
    if odd:
        raise RuntimeError(f"{odd} top-ups carry a non-numeric aggregator id: keep revision 0006")
    op.add_column('topup', sa.Column('provider_txn_id', sa.BigInteger(), nullable=True))
    op.execute("UPDATE topup SET provider_txn_id = CAST(provider_ref AS BIGINT)")
    op.drop_column('topup', 'provider_ref')
    op.add_column('operator', sa.Column('provider_operator_id', sa.Integer(), nullable=True))
    op.add_column('operator', sa.Column('provider_bundle_operator_id', sa.Integer(), nullable=True))
    for column, ref in (('provider_operator_id', 'airtime_ref'),
                        ('provider_bundle_operator_id', 'bundle_ref')):
        op.execute(sa.text(
            f"UPDATE operator SET {column} = (SELECT CAST({ref} AS INTEGER) "
            f"FROM operator_provider p WHERE p.operator_code = operator.code "
            f"AND p.provider = :provider)"
        ).bindparams(provider=RELOADLY))
    op.drop_table('operator_provider')
