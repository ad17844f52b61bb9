"""The billing contacts and alerts section's context, for its own views and for the Usage
page, which shows the section to the members who may manage it."""

from __future__ import annotations

from flask_login import current_user

from billing_app.access import can
from billing_app.notifications import adapters, alerts, contacts, outbox
from billing_app.notifications import settings as alert_settings
from billing_app.permissions import Action

RECENT_MESSAGES = 50


def section_context(**extra) -> dict:
    """What `_notifications.html` shows for the signed-in member's organisation."""
    organisation = current_user.organisation
    today = adapters.today_utc()
    saved = alert_settings.current(organisation.id)
    context = {
        "contacts": contacts.live_contacts(organisation.id),
        "max_contacts": contacts.MAX_CONTACTS,
        "alert_values": {
            "budget": "" if saved.budget is None else str(saved.budget),
            "growth_percent": saved.growth_percent or "",
            "growth_min_users": saved.growth_min_users or "",
        },
        "alert_errors": {},
        "billing_email_unsubscribed": saved.billing_email_unsubscribed,
        "alerts_sent": alerts.sent_this_month(organisation.id, today),
        "currency": alert_settings.currency(organisation.id),
        "outbox": outbox.recent(organisation.id, RECENT_MESSAGES),
        "contact_email": "",
        "contact_error": None,
        "notice": None,
    }
    context.update(extra)
    return context


def for_usage_page() -> dict | None:
    """The section's context on the Usage page, for members who may manage contacts."""
    return section_context() if can(Action.MANAGE_CONTACTS) else None
