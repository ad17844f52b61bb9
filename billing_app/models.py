"""The organisation, its members, its tenants' usage, its price list and its audit trail."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    event,
    func,
    inspect,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.orm.attributes import NEVER_SET, NO_VALUE
from werkzeug.security import check_password_hash, generate_password_hash

from billing_app.extensions import db
from billing_app.permissions import Role


def utcnow() -> dt.datetime:
    """The current time in UTC, timezone-aware."""
    return dt.datetime.now(dt.UTC)


ROLE_VALUES = tuple(role.value for role in Role)

# Checked against when there is no password hash to check (an unknown email, a member without
# a password), so that signing in takes as long whether or not the email is a member's.
UNKNOWN_PASSWORD_HASH = generate_password_hash("no member has this password")


class Organisation(db.Model):
    """An MSP that Petra bills monthly through Stripe."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    billing_email: Mapped[str] = mapped_column(String(254))
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    portal_direct_access: Mapped[bool] = mapped_column(default=False)
    # Time (Stripe's clock, seconds) of the newest Stripe change applied to the
    # billing email, so that an older webhook never overwrites a newer value.
    billing_email_stripe_ts: Mapped[int | None] = mapped_column(BigInteger)
    # Bumped whenever anything that affects the organisation's usage figures changes (prices,
    # tenants, pauses, identities, billable periods), so that cached summaries keyed by it
    # are never shown stale (see figures/cache.py).
    usage_revision: Mapped[int] = mapped_column(default=0, server_default="0")

    def bump_usage_revision(self) -> None:
        """Mark all of the usage figures as changed, in every month and tenant: the next
        flush adds one to `usage_revision` and records a `UsageChange` of every tenant from
        the earliest day. (The importer records what it changed more precisely.)"""
        self.usage_revision = Organisation.usage_revision + 1
        db.session.add(UsageChange(organisation_id=self.id, tenant_id=None, from_day=dt.date.min))

    members: Mapped[list[Member]] = relationship(back_populates="organisation")
    tenants: Mapped[list[Tenant]] = relationship(back_populates="organisation")
    prices: Mapped[list[Price]] = relationship(
        back_populates="organisation", order_by="Price.from_month"
    )


class Member(UserMixin, db.Model):
    """A person of an organisation, with exactly one role."""

    __tablename__ = "members"
    __table_args__ = (
        CheckConstraint(
            "role IN (" + ", ".join(f"'{r}'" for r in ROLE_VALUES) + ")",
            name="member_role_known",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    # Part of every session's member id: raising it signs the member out everywhere. It goes
    # up on sign-out and whenever the password or the role changes (see `end_sessions`).
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")

    organisation: Mapped[Organisation] = relationship(back_populates="members")

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        """Whether `password` is the member's; as slow for a member without one (the hash
        is checked either way, so the time taken tells nothing)."""
        if not self.password_hash:
            check_password_hash(UNKNOWN_PASSWORD_HASH, password)
            return False
        return check_password_hash(self.password_hash, password)

    def get_id(self) -> str:
        """The id kept in the session: the member's id and session version."""
        return f"{self.id}:{self.session_version}"

    def end_sessions(self) -> None:
        """Sign the member out of every session: the next flush raises the session version
        in the database (atomically, whoever else raises it)."""
        self.session_version = Member.session_version + 1


@event.listens_for(Member.password_hash, "set", active_history=True)
@event.listens_for(Member.role, "set", active_history=True)
def _credentials_changed(member: Member, value, old, _initiator) -> None:
    """A changed password or role ends the member's sessions, however it is changed."""
    if old is NO_VALUE or old is NEVER_SET or old == value:
        return
    if inspect(member).persistent:
        member.end_sessions()


class Price(db.Model):
    """The unit price per billable user per month, in effect from a month on."""

    __tablename__ = "prices"
    __table_args__ = (
        UniqueConstraint("organisation_id", "from_month", name="price_month_unique"),
        CheckConstraint("unit_price >= 0", name="price_not_negative"),
        CheckConstraint("length(currency) = 3", name="price_currency_code"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    # The first day of the month the price applies from.
    from_month: Mapped[dt.date] = mapped_column(Date)
    unit_price: Mapped[Decimal] = mapped_column(Numeric(12, 4))
    currency: Mapped[str] = mapped_column(String(3))

    organisation: Mapped[Organisation] = relationship(back_populates="prices")


class Tenant(db.Model):
    """One customer's Microsoft 365 tenant under the organisation."""

    __tablename__ = "tenants"
    __table_args__ = (
        UniqueConstraint("organisation_id", "external_id", name="tenant_id_unique"),
        CheckConstraint(
            "offboarded_on IS NULL OR offboarded_on > onboarded_on",
            name="tenant_offboarded_after_onboarded",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    external_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(500))
    microsoft_tenant_id: Mapped[str] = mapped_column(String(100))
    onboarded_on: Mapped[dt.date] = mapped_column(Date)
    offboarded_on: Mapped[dt.date | None] = mapped_column(Date)

    organisation: Mapped[Organisation] = relationship(back_populates="tenants")
    pauses: Mapped[list[TenantPause]] = relationship(
        back_populates="tenant", order_by="TenantPause.from_date", cascade="all, delete-orphan"
    )
    identities: Mapped[list[Identity]] = relationship(
        back_populates="tenant", cascade="all, delete-orphan"
    )


class _DateRange:
    """Days from `from_date` (inclusive) until `until_date` (exclusive; None: still open)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    from_date: Mapped[dt.date] = mapped_column(Date)
    until_date: Mapped[dt.date | None] = mapped_column(Date)


def _until_after_from(name: str) -> CheckConstraint:
    return CheckConstraint("until_date IS NULL OR until_date > from_date", name=name)


class TenantPause(_DateRange, db.Model):
    """A stretch of days in which a tenant is not billed."""

    __tablename__ = "tenant_pauses"
    __table_args__ = (_until_after_from("pause_until_after_from"),)

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)

    tenant: Mapped[Tenant] = relationship(back_populates="pauses")


class Identity(db.Model):
    """A user in a tenant."""

    __tablename__ = "identities"
    __table_args__ = (
        UniqueConstraint("organisation_id", "external_id", name="identity_id_unique"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str] = mapped_column(String(100))
    display_name: Mapped[str] = mapped_column(String(500))
    user_principal_name: Mapped[str] = mapped_column(String(500))

    tenant: Mapped[Tenant] = relationship(back_populates="identities")
    billable_periods: Mapped[list[BillablePeriod]] = relationship(
        back_populates="identity",
        order_by="BillablePeriod.from_date",
        cascade="all, delete-orphan",
    )


class BillablePeriod(_DateRange, db.Model):
    """Days on which an identity held at least one billable licence."""

    __tablename__ = "billable_periods"
    __table_args__ = (_until_after_from("period_until_after_from"),)

    identity_id: Mapped[int] = mapped_column(
        ForeignKey("identities.id", ondelete="CASCADE"), index=True
    )

    identity: Mapped[Identity] = relationship(back_populates="billable_periods")


class UsageChange(db.Model):
    """What changed in the usage data, as the importer recorded it in its transaction: the
    figures of one tenant (or, with no tenant, of every tenant, e.g. a price) from a day on.

    Its id is a revision: a tenant's figures of a month are those of the newest change of that
    tenant, or of every tenant, from a day before the month's end (see `figures.revisions`)."""

    __tablename__ = "usage_changes"
    __table_args__ = (
        Index("usage_change_org_day", "organisation_id", "from_day", "tenant_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    # The earliest day whose figures changed: every month ending after it is touched.
    from_day: Mapped[dt.date] = mapped_column(Date)


class AuditEvent(db.Model):
    """Who changed what, when, from where: billing email changes, whitelist changes."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("audit_org_action_time", "organisation_id", "action", "created_at"),
        CheckConstraint(
            "source IN ('app', 'stripe', 'staff', 'import')", name="audit_source_known"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    action: Mapped[str] = mapped_column(String(50))
    source: Mapped[str] = mapped_column(String(20))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )

    member: Mapped[Member | None] = relationship()


class ApiToken(db.Model):
    """A token for the read-only usage API: kept only as the SHA-256 of its secret and its
    first characters (to tell tokens apart), with its scopes, expiry and last use."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("api_token_org_created", "organisation_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(200))
    """The scopes granted, space-separated (`usage:read invoices:read`)."""
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    organisation: Mapped[Organisation] = relationship()
    created_by: Mapped[Member | None] = relationship()


class StripeEvent(db.Model):
    """A Stripe webhook event that has been applied; each is applied once."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    created: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
