"""Stripe's `customer.updated` events: a billing email changed in the Stripe portal (or
anywhere else) brought back to Petra, each event once, never letting an older event
overwrite a newer value."""

from __future__ import annotations

import enum
import json
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from billing_app.billing_email.addresses import InvalidEmail, normalise
from billing_app.billing_email.history import record_change
from billing_app.billing_email.locking import locked_organisation, organisation_lock
from billing_app.extensions import db
from billing_app.logs import billing_log as log
from billing_app.models import Organisation, StripeEvent
from billing_app.stripe_gateway import StripeGateway, StripeUnavailable

CLOCK_SLACK = 1


class EventOutcome(enum.StrEnum):
    APPLIED = "applied"
    UNCHANGED = "unchanged"
    STALE = "stale"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"


class MalformedEvent(ValueError):
    """A (signed) webhook body that is not an event in the shape Stripe sends."""


CLOCK_AHEAD = 3600
"""Seconds an event's `created` may be ahead of our clock: Stripe never sends one from later,
and one far ahead would make every later event look stale."""


@dataclass(frozen=True)
class WebhookEvent:
    """A Stripe event, read from its JSON: what applying it needs, checked for shape."""

    id: str
    type: str
    created: int
    customer_id: str | None = None
    email: object = None


def _text(value: object, where: str, max_length: int = 255) -> str:
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise MalformedEvent(f"{where} must be a string of 1 to {max_length} characters")
    return value


def read_event(payload: bytes) -> WebhookEvent:
    """The event in a webhook body, or MalformedEvent when Stripe would never send it."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        raise MalformedEvent("the body is not JSON") from None
    if not isinstance(data, dict) or data.get("object") != "event":
        raise MalformedEvent("the body is not an event object")
    event_id = _text(data.get("id"), "id")
    event_type = _text(data.get("type"), "type", 100)
    created = data.get("created")
    if type(created) is not int or not 0 <= created <= time.time() + CLOCK_AHEAD:
        raise MalformedEvent("created must be a Unix time in whole seconds, not in the future")
    body = data.get("data")
    if not isinstance(body, dict) or not isinstance(body.get("object"), dict):
        raise MalformedEvent("data.object must be an object")
    event = WebhookEvent(event_id, event_type, created)
    if event_type != "customer.updated":
        return event
    customer = body["object"]
    if customer.get("object") != "customer":
        raise MalformedEvent("data.object of customer.updated must be a customer")
    customer_id = _text(customer.get("id"), "data.object.id")
    return WebhookEvent(event_id, event_type, created, customer_id, customer.get("email"))


def apply_stripe_event(event: WebhookEvent, stripe: StripeGateway) -> EventOutcome:
    """Apply a verified Stripe event once: `customer.updated` brings the email back.

    Raises StripeUnavailable when Stripe must be asked and cannot answer, and OrganisationBusy
    when a save of the organisation's billing email does not finish in time (Stripe then
    sends the event again).
    """
    if event.type != "customer.updated":
        return EventOutcome.IGNORED
    known = db.session.scalar(
        select(Organisation.id).where(Organisation.stripe_customer_id == event.customer_id)
    )
    if known is None:
        db.session.rollback()
        return EventOutcome.IGNORED
    with organisation_lock(known):
        db.session.add(StripeEvent(id=event.id, type=event.type, created=event.created))
        try:
            db.session.flush()
        except IntegrityError:
            db.session.rollback()
            return EventOutcome.DUPLICATE
        organisation = locked_organisation(known)
        try:
            outcome = _apply_customer_email(organisation, event, event.email, stripe)
        except StripeUnavailable:
            db.session.rollback()
            raise
        db.session.commit()
    return outcome


def _valid_or_none(email: object) -> str | None:
    """The address by the billing-email rules (normalised), or None when it breaks them."""
    if not isinstance(email, str):
        return None
    try:
        return normalise(email)
    except InvalidEmail:
        return None


def _apply_customer_email(organisation: Organisation, event, email, stripe) -> EventOutcome:
    """Bring the customer's email from an event into the organisation, unless it is older.

    Stripe's times are whole seconds: an event within CLOCK_SLACK of the last applied change
    cannot be ordered by time, so Stripe's current value decides whether it still holds.
    """
    known = organisation.billing_email_stripe_ts
    if known is not None and event.created < known - CLOCK_SLACK:
        return EventOutcome.STALE
    email = _valid_or_none(email)
    if email is None:
        log.warning(
            "billing email from Stripe not usable: organisation=%s source=stripe event=%s",
            organisation.slug,
            event.id,
        )
        return EventOutcome.IGNORED
    newest = max(known or 0, event.created)
    if email == organisation.billing_email:
        organisation.billing_email_stripe_ts = newest
        return EventOutcome.UNCHANGED
    too_close = known is not None and event.created <= known
    if too_close:
        held = _valid_or_none(stripe.customer_email(organisation.stripe_customer_id))
        if held != email:
            return EventOutcome.STALE
    old = organisation.billing_email
    organisation.billing_email = email
    organisation.billing_email_stripe_ts = newest
    record_change(
        organisation,
        email,
        old=old,
        source="stripe",
        detail={"event": event.id, "customer": organisation.stripe_customer_id},
    )
    return EventOutcome.APPLIED
