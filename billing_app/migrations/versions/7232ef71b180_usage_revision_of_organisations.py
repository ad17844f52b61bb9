"""Usage revision of organisations

A counter the importer bumps whenever an organisation's usage figures may have changed;
cached usage summaries are keyed by it. Existing organisations start at 0.

Revision ID: 7232ef71b180
Revises: a94e039f93a7
Create Date: 2026-11-24 10:33:00.741803

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '7232ef71b180'
down_revision = 'a94e039f93a7'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('organisations', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('usage_revision', sa.Integer(), server_default='0', nullable=False)
        )


def downgrade():
    with op.batch_alter_table('organisations', schema=None) as batch_op:
        batch_op.drop_column('usage_revision')
