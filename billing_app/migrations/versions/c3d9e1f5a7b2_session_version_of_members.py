"""Session version of members

Part of every session's member id; raised on sign-out and when a member's password or role
changes, so that older session cookies no longer sign anyone in. Existing members start at 0
(their sessions from before, which carry no version, end once).

Revision ID: c3d9e1f5a7b2
Revises: 7232ef71b180
Create Date: 2026-12-01 21:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c3d9e1f5a7b2'
down_revision = '7232ef71b180'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('session_version', sa.Integer(), server_default='0', nullable=False)
        )


def downgrade():
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('session_version')
