"""The billing email form as an admin uses it, and what Petra and Stripe hold after a save."""

from __future__ import annotations

import html
import re

from sqlalchemy import select

from billing_app.billing_email import history as billing_email
from billing_app.extensions import db
from billing_app.models import AuditEvent, Organisation

EDIT = "/settings/usage/billing-email/edit"
SAVE = "/settings/usage/billing-email"
OLD = "billing@northwind.example"
HTMX = {"HX-Request": "true"}
HIDDEN = re.compile(r'name="(opened_with|nonce)" value="([^"]*)"')


def open_form(auth) -> dict[str, str]:
    """Open the edit form as htmx does and return its hidden fields."""
    response = auth.client.get(EDIT, headers=HTMX)
    assert response.status_code == 200
    return hidden_fields(response.get_data(as_text=True))


def hidden_fields(page: str) -> dict[str, str]:
    return {name: html.unescape(value) for name, value in HIDDEN.findall(page)}


def save(auth, email: str, form: dict, htmx: bool = True, **extra):
    return auth.post(SAVE, {"email": email, **form, **extra}, htmx=htmx)


def stored_email(app, slug: str = "northwind-msp") -> str:
    with app.app_context():
        return db.session.scalar(
            select(Organisation.billing_email).where(Organisation.slug == slug)
        )


def audit_rows(app) -> list[tuple]:
    with app.app_context():
        events = db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == billing_email.AUDIT_ACTION)
            .order_by(AuditEvent.id)
        )
        return [(e.source, e.member_id, e.old_value, e.new_value) for e in events]


def stripe_email(stripe_client, organisation) -> str:
    return stripe_client.v1.customers.retrieve(organisation.stripe_customer_id).email


def email_updates(stripe_server, organisation) -> list[dict]:
    """The update requests the local Stripe server received for the organisation's customer."""
    path = f"/v1/customers/{organisation.stripe_customer_id}"
    return [r for r in stripe_server.requests(path) if r["method"] == "POST"]
