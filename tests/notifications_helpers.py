"""Shared steps of the notification tests: draining the outbox as the worker does, reading
the outbox and the contacts, confirming a contact through its mailed link."""

from __future__ import annotations

import re

from sqlalchemy import select

from billing_app.extensions import db
from billing_app.notifications import tasks
from billing_app.notifications.models import BillingContact, OutboxMessage

CONTACTS = "/settings/usage/notifications/contacts"
SECTION = "/settings/usage/notifications"
ALERTS = "/settings/usage/notifications/alerts"
LINK = re.compile(
    r"https://billing\.petra\.example/settings/usage/notifications/confirm/(\d+)/(\S+)"
)


def drain(app):
    """Send what the outbox has due, as the worker's drain task does."""
    with app.app_context():
        return tasks.drain_now(app)


def outbox(app) -> list[OutboxMessage]:
    with app.app_context():
        rows = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        db.session.expunge_all()
        return rows


def contact(app, email: str) -> BillingContact:
    with app.app_context():
        found = db.session.scalar(select(BillingContact).where(BillingContact.email == email))
        db.session.expunge_all()
        return found


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content()


def html_of(message) -> str:
    return message.get_body(("html",)).get_content()


def confirmation_link(message) -> tuple[str, str]:
    """(path, token) of the confirmation link in a confirmation message."""
    found = LINK.search(text_of(message))
    assert found, text_of(message)
    path = found.group(0).removeprefix("https://billing.petra.example")
    return path, found.group(2)


def add_confirmed(auth, app, mail_server, email: str) -> None:
    """Add `email` as a contact and confirm it through the link it is mailed."""
    before = len(mail_server.messages)
    assert auth.post(CONTACTS, {"email": email}).status_code == 303
    drain(app)
    message = mail_server.wait_for(before + 1)[-1]
    path, _ = confirmation_link(message)
    page = auth.client.get(path)
    assert page.status_code == 200
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    assert auth.client.post(path, data={"csrf_token": csrf}).status_code == 200
