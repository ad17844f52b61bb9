"""The tables of billing contacts, alert settings, alerts and statements sent, and the outbox."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from billing_app.extensions import db
from billing_app.models import utcnow

QUEUED, SENT, FAILED = "queued", "sent", "failed"


class BillingContact(db.Model):
    """An extra address that gets the statement and the alerts once it has confirmed."""

    __tablename__ = "billing_contacts"
    __table_args__ = (
        # One live contact per address and organisation; removed ones keep their history.
        Index(
            "billing_contact_live_email",
            "organisation_id",
            "email",
            unique=True,
            sqlite_where=text("removed_at IS NULL"),
            postgresql_where=text("removed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    # SHA-256 of the confirmation link's token; None once used (or confirmed).
    token_hash: Mapped[str | None] = mapped_column(String(64))
    token_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    confirmations_sent: Mapped[int] = mapped_column(default=0, server_default="0")
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    removed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @property
    def confirmed(self) -> bool:
        return self.confirmed_at is not None


class AlertSettings(db.Model):
    """An organisation's budget and growth threshold, and whether its billing email opted out."""

    __tablename__ = "alert_settings"
    __table_args__ = (
        CheckConstraint("budget IS NULL OR budget > 0", name="alert_budget_positive"),
        CheckConstraint(
            "growth_percent IS NULL OR growth_percent > 0", name="alert_growth_percent_positive"
        ),
        CheckConstraint(
            "growth_min_users IS NULL OR growth_min_users > 0", name="alert_growth_users_positive"
        ),
    )

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    budget: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    growth_percent: Mapped[int | None] = mapped_column(Integer)
    growth_min_users: Mapped[int | None] = mapped_column(Integer)
    # The billing email unsubscribed from the alerts (it keeps Stripe's own mail).
    billing_email_unsubscribed: Mapped[bool] = mapped_column(default=False, server_default="false")
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class SentAlert(db.Model):
    """An alert sent: at most one per organisation, month, kind, threshold and tenant."""

    __tablename__ = "sent_alerts"
    __table_args__ = (
        UniqueConstraint(
            "organisation_id", "month", "kind", "threshold", "tenant_key", name="alert_once"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    month: Mapped[str] = mapped_column(String(7))
    kind: Mapped[str] = mapped_column(String(20))
    threshold: Mapped[int] = mapped_column(Integer)
    # The tenant's import id for a growth alert; '' for a budget alert (NULLs never clash).
    tenant_key: Mapped[str] = mapped_column(String(100), default="")
    detail: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Statement(db.Model):
    """An invoice whose statement is (being) sent: one per invoice, whatever the events."""

    __tablename__ = "statements"

    invoice_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    event_id: Mapped[str] = mapped_column(String(255))
    built_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OutboxMessage(db.Model):
    """One message to one recipient, as built, and how its delivery stands."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        CheckConstraint("state IN ('queued', 'sent', 'failed')", name="outbox_state_known"),
        Index("outbox_due", "state", "next_attempt_at"),
        Index("outbox_org_time", "organisation_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    kind: Mapped[str] = mapped_column(String(30))
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(500))
    message: Mapped[bytes] = mapped_column(LargeBinary)
    # What makes the message itself: the same key is never queued twice.
    dedupe_key: Mapped[str] = mapped_column(String(300), unique=True)
    state: Mapped[str] = mapped_column(String(10), default=QUEUED)
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    # A worker's claim: its token, and when it lapses if the worker died holding it.
    claim_token: Mapped[str | None] = mapped_column(String(32))
    claimed_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
