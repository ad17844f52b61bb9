"""Notifications: billing contacts, alert settings, alerts and statements sent, the outbox

Revision ID: e5b8c2d4f6a1
Revises: e5b7c9d1f3a2
Create Date: 2026-12-06 11:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e5b8c2d4f6a1'
down_revision = 'e5b7c9d1f3a2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'billing_contacts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('email', sa.String(length=254), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=True),
        sa.Column('token_expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('confirmations_sent', sa.Integer(), server_default='0', nullable=False),
        sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(
        op.f('ix_billing_contacts_organisation_id'), 'billing_contacts', ['organisation_id']
    )
    op.create_index(
        'billing_contact_live_email',
        'billing_contacts',
        ['organisation_id', 'email'],
        unique=True,
        sqlite_where=sa.text('removed_at IS NULL'),
        postgresql_where=sa.text('removed_at IS NULL'),
    )
    op.create_table(
        'alert_settings',
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('budget', sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column('growth_percent', sa.Integer(), nullable=True),
        sa.Column('growth_min_users', sa.Integer(), nullable=True),
        sa.Column(
            'billing_email_unsubscribed', sa.Boolean(), server_default='false', nullable=False
        ),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint('budget IS NULL OR budget > 0', name='alert_budget_positive'),
        sa.CheckConstraint(
            'growth_percent IS NULL OR growth_percent > 0', name='alert_growth_percent_positive'
        ),
        sa.CheckConstraint(
            'growth_min_users IS NULL OR growth_min_users > 0', name='alert_growth_users_positive'
        ),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id']),
        sa.PrimaryKeyConstraint('organisation_id'),
    )
    op.create_table(
        'sent_alerts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('month', sa.String(length=7), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('threshold', sa.Integer(), nullable=False),
        sa.Column('tenant_key', sa.String(length=100), nullable=False),
        sa.Column('detail', sa.JSON(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint(
            'organisation_id', 'month', 'kind', 'threshold', 'tenant_key', name='alert_once'
        ),
    )
    op.create_table(
        'statements',
        sa.Column('invoice_id', sa.String(length=255), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.String(length=255), nullable=False),
        sa.Column('built_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id']),
        sa.PrimaryKeyConstraint('invoice_id'),
    )
    op.create_index(op.f('ix_statements_organisation_id'), 'statements', ['organisation_id'])
    op.create_table(
        'outbox_messages',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=30), nullable=False),
        sa.Column('recipient', sa.String(length=254), nullable=False),
        sa.Column('subject', sa.String(length=500), nullable=False),
        sa.Column('message', sa.LargeBinary(), nullable=False),
        sa.Column('dedupe_key', sa.String(length=300), nullable=False),
        sa.Column('state', sa.String(length=10), nullable=False),
        sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column(
            'next_attempt_at',
            sa.DateTime(timezone=True),
            server_default=sa.text('(CURRENT_TIMESTAMP)'),
            nullable=False,
        ),
        sa.Column('claim_token', sa.String(length=32), nullable=True),
        sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('queued', 'sent', 'failed')", name='outbox_state_known'),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('dedupe_key'),
    )
    op.create_index('outbox_due', 'outbox_messages', ['state', 'next_attempt_at'])
    op.create_index('outbox_org_time', 'outbox_messages', ['organisation_id', 'created_at'])


def downgrade():
    op.drop_index('outbox_org_time', table_name='outbox_messages')
    op.drop_index('outbox_due', table_name='outbox_messages')
    op.drop_table('outbox_messages')
    op.drop_index(op.f('ix_statements_organisation_id'), table_name='statements')
    op.drop_table('statements')
    op.drop_table('sent_alerts')
    op.drop_table('alert_settings')
    op.drop_index('billing_contact_live_email', table_name='billing_contacts')
    op.drop_index(op.f('ix_billing_contacts_organisation_id'), table_name='billing_contacts')
    op.drop_table('billing_contacts')
