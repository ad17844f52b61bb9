"""Stripe events as Stripe signs and sends them to the webhook, and the billing email they leave."""

from __future__ import annotations

import json
import time
import uuid

import stripe
from sqlalchemy import select

from billing_app.extensions import db
from billing_app.models import Organisation

WEBHOOK = "/webhooks/stripe"


def customer_event(
    customer_id: str,
    email: str | None,
    created: int | None = None,
    *,
    event_id: str | None = None,
    type: str = "customer.updated",
) -> dict:
    """A Stripe event as Stripe sends it, about a customer."""
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2017-08-15",
        "created": created if created is not None else int(time.time()),
        "livemode": False,
        "type": type,
        "data": {"object": {"id": customer_id, "object": "customer", "email": email}},
    }


def signed(body: str, secret: str, timestamp: int | None = None) -> dict:
    header = stripe.WebhookSignature.generate_signature_header(body, secret, timestamp)
    return {"Stripe-Signature": header, "Content-Type": "application/json"}


def deliver(client, app, event: dict, **sign):
    body = json.dumps(event)
    secret = sign.pop("secret", app.config["STRIPE_WEBHOOK_SECRET"])
    return client.post(WEBHOOK, data=body, headers=signed(body, secret, **sign))


def state(app) -> tuple[str, int | None]:
    with app.app_context():
        org = db.session.scalar(select(Organisation).where(Organisation.slug == "northwind-msp"))
        return org.billing_email, org.billing_email_stripe_ts
