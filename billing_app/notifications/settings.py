"""The alert settings: a monthly budget (a decimal amount in the organisation's currency) and a
tenant growth threshold (a percentage and a minimum number of users). Empty means none."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from sqlalchemy import select

from billing_app.extensions import db
from billing_app.models import AuditEvent, Member, Price, utcnow
from billing_app.notifications.models import AlertSettings

MAX_BUDGET = Decimal("999999999999.99")
AUDIT_ACTION = "alert_settings_changed"


class InvalidSettings(ValueError):
    """The settings as typed are refused; `errors` says why, by field."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Alerts:
    budget: Decimal | None
    growth_percent: int | None
    growth_min_users: int | None
    billing_email_unsubscribed: bool = False


def current(organisation_id: int) -> Alerts:
    row = db.session.get(AlertSettings, organisation_id)
    if row is None:
        return Alerts(None, None, None)
    return Alerts(
        row.budget, row.growth_percent, row.growth_min_users, row.billing_email_unsubscribed
    )


def parse(budget: str | None, growth_percent: str | None, growth_min_users: str | None) -> Alerts:
    """The settings as typed, or InvalidSettings saying what is wrong with each field."""
    errors: dict[str, str] = {}
    parsed_budget = None
    text = (budget or "").strip().replace(",", "")
    if text:
        try:
            parsed_budget = Decimal(text)
        except InvalidOperation:
            parsed_budget = None
            errors["budget"] = "Enter the budget as an amount, like 2500 or 2500.50."
        else:
            if not parsed_budget.is_finite() or parsed_budget <= 0:
                errors["budget"] = "The budget must be an amount above zero."
            elif parsed_budget.as_tuple().exponent < -2:  # type: ignore[operator]
                errors["budget"] = "The budget has at most two decimals (cents)."
            elif parsed_budget > MAX_BUDGET:
                errors["budget"] = "That budget is larger than any bill could be."
    percent = _whole(growth_percent, "growth_percent", "The growth threshold", errors, 100_000)
    users = _whole(growth_min_users, "growth_min_users", "The minimum of users", errors, 10_000_000)
    if users is not None and percent is None and "growth_percent" not in errors:
        errors["growth_percent"] = "Enter the growth percentage too, or empty both."
    if errors:
        raise InvalidSettings(errors)
    return Alerts(parsed_budget, percent, users)


def _whole(raw: str | None, name: str, label: str, errors: dict, largest: int) -> int | None:
    text = (raw or "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        errors[name] = f"{label} must be a whole number of at least 1."
        return None
    if int(text) > largest:
        errors[name] = f"{label} is at most {largest:,}."
        return None
    return int(text)


def save(organisation_id: int, member: Member, alerts: Alerts) -> None:
    """Store the settings, with an audit record of what changed."""
    row = db.session.get(AlertSettings, organisation_id)
    if row is None:
        row = AlertSettings(organisation_id=organisation_id)
        db.session.add(row)
    before = current(organisation_id)
    row.budget = alerts.budget
    row.growth_percent = alerts.growth_percent
    row.growth_min_users = alerts.growth_min_users
    row.updated_at = utcnow()
    db.session.add(
        AuditEvent(
            organisation_id=organisation_id,
            member_id=member.id,
            action=AUDIT_ACTION,
            source="app",
            old_value=_describe(before),
            new_value=_describe(alerts),
        )
    )
    db.session.commit()


def _describe(alerts: Alerts) -> str:
    return (
        f"budget={alerts.budget or ''} growth_percent={alerts.growth_percent or ''} "
        f"growth_min_users={alerts.growth_min_users or ''}"
    )


def currency(organisation_id: int) -> str:
    """The organisation's currency (of its latest price), as budgets are written in it."""
    code = db.session.scalar(
        select(Price.currency)
        .where(Price.organisation_id == organisation_id)
        .order_by(Price.from_month.desc())
        .limit(1)
    )
    return (code or "usd").upper()
