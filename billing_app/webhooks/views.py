"""Stripe webhooks: signed events that keep the billing email in step with Stripe, and the
finalized invoices whose statement is mailed to the billing contacts."""

from __future__ import annotations

import json

import stripe
from flask import Blueprint, current_app, jsonify, request

from billing_app.billing_email import events
from billing_app.billing_email.locking import OrganisationBusy
from billing_app.extensions import csrf
from billing_app.logs import billing_log as log
from billing_app.stripe_gateway import StripeUnavailable, gateway

bp = Blueprint("webhooks", __name__)

INVOICE_FINALIZED = "invoice.finalized"


def statement_on_finalized(payload: bytes) -> str:
    """Record a finalized invoice's statement once and have the worker build and send it."""
    from billing_app.notifications import statements, tasks

    recorded = statements.record(json.loads(payload))
    if recorded.outcome == "queued":
        tasks.after_invoice_finalized(recorded.invoice_id)
    return recorded.outcome


@bp.post("/webhooks/stripe")
@csrf.exempt
def stripe_event():
    """Verify a Stripe event's signature and apply it once."""
    secret = current_app.config.get("STRIPE_WEBHOOK_SECRET")
    if not secret:
        log.error("Stripe webhook refused: STRIPE_WEBHOOK_SECRET is not configured")
        return jsonify(error="Webhooks are not configured."), 503
    payload = request.get_data()
    try:
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8"),
            request.headers.get("Stripe-Signature"),
            secret,
            stripe.Webhook.DEFAULT_TOLERANCE,
        )
    except (ValueError, stripe.SignatureVerificationError):
        return jsonify(error="Invalid payload or signature."), 400
    try:
        event = events.read_event(payload)
    except events.MalformedEvent as problem:
        log.warning("Stripe webhook refused: not an event as Stripe sends it (%s)", problem)
        return jsonify(error="The body is not a Stripe event."), 400
    if event.type == INVOICE_FINALIZED:
        return jsonify(received=True, outcome=statement_on_finalized(payload))
    try:
        outcome = events.apply_stripe_event(event, gateway())
    except StripeUnavailable:
        return jsonify(error="Stripe could not be asked; send the event again."), 503
    except OrganisationBusy:
        return jsonify(error="The billing email is being changed; send the event again."), 503
    return jsonify(received=True, outcome=outcome)
