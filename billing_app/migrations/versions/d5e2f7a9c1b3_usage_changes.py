"""Usage changes: which tenant's figures an import changed, from which day

Existing tenants get one change each, from their onboarding day, so that every tenant has a
revision from the start.

Revision ID: d5e2f7a9c1b3
Revises: e5b8c2d4f6a1
Create Date: 2026-12-06 11:50:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd5e2f7a9c1b3'
down_revision = 'e5b8c2d4f6a1'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'usage_changes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=True),
        sa.Column('from_day', sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id']),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(
        'usage_change_org_day',
        'usage_changes',
        ['organisation_id', 'from_day', 'tenant_id', 'id'],
        unique=False,
    )
    op.execute(
        "INSERT INTO usage_changes (organisation_id, tenant_id, from_day) "
        "SELECT organisation_id, id, onboarded_on FROM tenants ORDER BY id"
    )


def downgrade():
    op.drop_index('usage_change_org_day', table_name='usage_changes')
    op.drop_table('usage_changes')
