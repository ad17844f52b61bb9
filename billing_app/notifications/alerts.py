"""The alert checks, run on the worker after every import (the import leaves a request in the
queue's store after its commit; the worker's sweep, every minute, runs it) and once a day.

Budget: the current month's projected month-end cost (the Usage page's projection) reaching
80 % and 100 % of the budget. Growth: a tenant whose billable users this month exceed last
month's by at least the threshold's percentage and by at least its minimum number of users
(a tenant with none last month needs only the minimum).

Each alert is sent at most once per organisation, month, threshold and tenant: the alert's row
(`SentAlert`, UNIQUE on those) is written with its messages in one transaction, so however
many imports, workers and retries check at once, one of them wins and the others roll back.
The budget alerts key on the percentage, so lowering the budget does not send 80 % again.
Mailed to the billing email (unless it unsubscribed) and the confirmed contacts.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from billing_app.extensions import db
from billing_app.models import Organisation
from billing_app.notifications import adapters, contacts, mail, messages
from billing_app.notifications import settings as alert_settings
from billing_app.notifications.models import SentAlert

log = logging.getLogger("billing_app.notifications")

BUDGET_STEPS = (80, 100)
BUDGET, GROWTH = "budget", "growth"


@dataclass(frozen=True, slots=True)
class Due:
    """An alert the figures call for."""

    kind: str
    threshold: int
    tenant_key: str
    subject: str
    text: str
    detail: dict


def run_requested_checks(today: dt.date, take_request: Callable[[int], bool]) -> int:
    """Check every organisation whose check was asked for (`take_request` answers whether it
    was, and takes the request so that it runs once)."""
    ids = db.session.scalars(select(Organisation.id).order_by(Organisation.id)).all()
    db.session.rollback()
    return sum(check(org_id, today) for org_id in ids if take_request(org_id))


def check_all(today: dt.date) -> int:
    """Check every organisation; the number of alerts sent."""
    ids = db.session.scalars(select(Organisation.id).order_by(Organisation.id)).all()
    return sum(check(organisation_id, today) for organisation_id in ids)


def check(organisation_id: int, today: dt.date) -> int:
    """Send the alerts `organisation_id` is due on `today` and has not had; how many."""
    organisation = db.session.get(Organisation, organisation_id)
    if organisation is None:
        return 0
    wanted = alert_settings.current(organisation_id)
    due = list(_budget(organisation, wanted, today)) + list(_growth(organisation, wanted, today))
    db.session.rollback()
    sent = 0
    for alert in due:
        sent += _send(organisation_id, str(adapters.Month.of(today)), alert)
    return sent


def _budget(organisation: Organisation, wanted: alert_settings.Alerts, today: dt.date):
    if wanted.budget is None:
        return
    projected = adapters.projected_cost(organisation, today)
    if projected is None:
        return
    cost, currency = projected
    month = adapters.Month.of(today)
    for step in BUDGET_STEPS:
        if cost * 100 >= wanted.budget * step:
            amount = f"{_money(cost)} {currency.upper()}"
            budget = f"{_money(wanted.budget)} {currency.upper()}"
            yield Due(
                BUDGET,
                step,
                "",
                f"Budget alert: {step} % of the monthly budget",
                f"{month.label} is projected to cost {amount} by the month's end: {step} % or "
                f"more of the monthly budget of {budget}. The projection counts the usage "
                "recorded so far through the last day of the month.",
                {"projected": str(cost), "budget": str(wanted.budget), "currency": currency},
            )


def _growth(organisation: Organisation, wanted: alert_settings.Alerts, today: dt.date):
    if wanted.growth_percent is None:
        return
    month = adapters.Month.of(today)
    now = adapters.month_totals(organisation, month, today)
    before = adapters.month_totals(organisation, month.previous(), today)
    if now is None:
        return
    earlier = {t.tenant_id: t.billable_users for t in before.tenants} if before else {}
    minimum = wanted.growth_min_users or 1
    for tenant in now.tenants:
        last = earlier.get(tenant.tenant_id, 0)
        grown = tenant.billable_users - last
        if grown < minimum or grown * 100 < wanted.growth_percent * last:
            continue
        percent = "new" if last == 0 else f"+{grown * 100 // last} %"
        yield Due(
            GROWTH,
            wanted.growth_percent,
            tenant.external_id,
            f"Growth alert: {tenant.name}",
            f"{tenant.name} has {tenant.billable_users} billable users in {month.label}, "
            f"{grown} more than the {last} of {month.previous().label} ({percent}). The "
            f"threshold is {wanted.growth_percent} % and at least {minimum} users.",
            {"tenant": tenant.external_id, "users": tenant.billable_users, "previous": last},
        )


def _money(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.01')):,}"


def recipients(organisation: Organisation) -> list[tuple[int | None, str]]:
    """(contact id or None for the billing email, address): who gets an alert."""
    wanted = alert_settings.current(organisation.id)
    found: list[tuple[int | None, str]] = []
    if not wanted.billing_email_unsubscribed:
        found.append((None, organisation.billing_email))
    seen = {organisation.billing_email.lower()}
    for contact_id, email in contacts.confirmed_addresses(organisation.id):
        if email.lower() not in seen:
            found.append((contact_id, email))
            seen.add(email.lower())
    return found


def _send(organisation_id: int, month: str, alert: Due) -> int:
    """Record the alert and queue its messages, once: 1 if this call sent it."""
    organisation = db.session.get(Organisation, organisation_id)
    row = SentAlert(
        organisation_id=organisation_id,
        month=month,
        kind=alert.kind,
        threshold=alert.threshold,
        tenant_key=alert.tenant_key,
        detail=alert.detail,
    )
    db.session.add(row)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return 0
    subject = mail.subject_for(organisation.name, alert.subject)
    usage = messages.link("usage.page")
    for contact_id, address in recipients(organisation):
        draft = mail.Draft(
            recipient=address,
            subject=subject,
            text=f"{alert.text}\n\nSee the month on the Usage page: {usage}",
            html=messages.paragraphs(alert.text)
            + f'<p><a href="{html.escape(usage)}">See the month on the Usage page</a></p>',
            unsubscribe_url=messages.unsubscribe_link(organisation_id, contact_id),
        )
        messages.queue(organisation, f"alert_{alert.kind}", draft, f"alert:{row.id}:{address}")
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return 0
    log.info(
        "alert sent: organisation_id=%s month=%s %s %s %s",
        organisation_id,
        month,
        alert.kind,
        alert.threshold,
        alert.tenant_key,
    )
    return 1


def sent_this_month(organisation_id: int, today: dt.date) -> list[SentAlert]:
    return list(
        db.session.scalars(
            select(SentAlert)
            .where(
                SentAlert.organisation_id == organisation_id,
                SentAlert.month == str(adapters.Month.of(today)),
            )
            .order_by(SentAlert.created_at, SentAlert.id)
        )
    )
