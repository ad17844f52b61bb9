"""Saving the billing email an admin typed: Stripe first (with an idempotency key), then the
organisation and its audit event in one transaction, one change of an organisation at a time.
Stripe is the source of truth."""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import select, update

from billing_app.billing_email.history import AUDIT_ACTION, record_change
from billing_app.billing_email.locking import (
    BUSY,
    OrganisationBusy,
    locked_organisation,
    organisation_lock,
)
from billing_app.extensions import db
from billing_app.logs import billing_log as log
from billing_app.models import AuditEvent, Member, Organisation
from billing_app.stripe_gateway import StripeGateway, StripeRequestFailed, StripeUnavailable

SAVE_RATE_LIMIT = "10 per minute"


TOO_MANY_SAVES = (
    "That is a lot of saves in a short time, so this one was not made. "
    "Wait a minute, then save again."
)


def idempotency_key(customer_id: str, old: str, new: str, nonce: str) -> str:
    """The Stripe idempotency key of one intended change: this customer's email from `old` to
    `new`, from the form opened with `nonce`. Sending the same form again gives the same key;
    any other change, or another opening of the form, gives another."""
    parts = json.dumps([customer_id, old, new, nonce], ensure_ascii=True)
    return f"billing-email-{hashlib.sha256(parts.encode()).hexdigest()}"


class Outcome(enum.StrEnum):
    SAVED = "saved"
    UNCHANGED = "unchanged"
    CONFLICT = "conflict"
    SHARED = "shared"
    NO_CUSTOMER = "no_customer"
    STRIPE_FAILED = "stripe_failed"
    TOO_MANY = "too_many"
    BUSY = "busy"
    PENDING = "pending"
    """Stripe did not answer in time (or is still answering): the change may still land."""


@dataclass(frozen=True)
class Change:
    """A submitted edit: the new (normalised) address and what the form was opened with."""

    email: str
    opened_with: str
    nonce: str
    confirmed_shared: bool = False


@dataclass(frozen=True)
class Result:
    """What a save did; `current` is the stored address afterwards."""

    outcome: Outcome
    current: str
    status: int
    message: str

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.SAVED, Outcome.UNCHANGED)

    @property
    def not_saved(self) -> bool:
        """Saving failed for a reason that is not the address (Stripe, limits, no customer):
        the form says so above Save, not beside the field."""
        return self.outcome in (
            Outcome.STRIPE_FAILED,
            Outcome.PENDING,
            Outcome.BUSY,
            Outcome.TOO_MANY,
            Outcome.NO_CUSTOMER,
        )


STRIPE_PROBLEMS = {
    "timeout": (
        504,
        "Stripe did not answer in time. The change may still reach Stripe; if it does, the "
        "billing email here changes to it by itself. Saving again is safe: the change will not "
        "be made twice.",
    ),
    "in_progress": (
        409,
        "Stripe did not answer in time and is still working on this change. It may still go "
        "through; if it does, the billing email here changes to it by itself. Saving again is "
        "safe: the change will not be made twice.",
    ),
    "unreachable": (
        503,
        "Petra could not reach Stripe, so the billing email was not changed. "
        "Try again in a few minutes.",
    ),
    "busy": (
        503,
        "Stripe is busy and did not take the change, so the billing email was not changed. "
        "Wait a moment, then save again.",
    ),
    "missing": (
        409,
        "The Stripe customer linked to your organisation no longer exists at Stripe, so the "
        "billing email was not changed. Please contact Petra support.",
    ),
    "refused": (
        502,
        "Stripe did not accept the change, so the billing email was not changed. "
        "If it keeps happening, please contact Petra support.",
    ),
}


PENDING_REASONS = frozenset({"timeout", "in_progress"})
"""Failures after which Stripe may still make the change: the form then waits for it."""


STRIPE_ERROR = (
    502,
    "Stripe had a problem on its side and did not take the change, so the billing email was "
    "not changed. Try again in a few minutes.",
)


def _stripe_problem(failure: StripeUnavailable) -> tuple[int, str]:
    reason = failure.reason if isinstance(failure, StripeRequestFailed) else "error"
    return STRIPE_PROBLEMS.get(reason, STRIPE_ERROR)


def save(organisation_id: int, member: Member, change: Change, stripe: StripeGateway) -> Result:
    """Change the billing email: Stripe first, then the organisation and its audit trail.

    One change of an organisation at a time: a second admin saving meanwhile waits, then finds
    the address changed and is told so, and Stripe and Petra end with the winner's address.
    """
    try:
        with organisation_lock(organisation_id):
            return _save(organisation_id, member, change, stripe)
    except OrganisationBusy:
        db.session.rollback()
        organisation = db.session.get(Organisation, organisation_id, populate_existing=True)
        result = Result(Outcome.BUSY, organisation.billing_email, 503, BUSY)
        _log_refusal(organisation, member, result)
        return result


def _save(organisation_id: int, member: Member, change: Change, stripe: StripeGateway) -> Result:
    organisation = locked_organisation(organisation_id)
    current = organisation.billing_email
    refusal = _refusal(organisation, change)
    held = _update_stripe(organisation, change, stripe) if refusal is None else refusal
    if isinstance(held, Result):
        db.session.rollback()
        if not held.ok:
            _log_refusal(organisation, member, held)
        return held
    if held.email != change.email:
        # Stripe does not hold the new address: a replayed answer to a change made once
        # already and undone since, or (never seen) an answer with another address.
        db.session.rollback()
        result = _conflict(current, once_saved=True) if held.replayed else _not_confirmed(current)
        _log_refusal(organisation, member, result)
        return result
    changed_at = held.at
    written = db.session.execute(
        update(Organisation)
        .where(Organisation.id == organisation_id, Organisation.billing_email == current)
        .values(
            billing_email=change.email,
            billing_email_stripe_ts=max(organisation.billing_email_stripe_ts or 0, changed_at),
        )
        .execution_options(synchronize_session=False)
    )
    if written.rowcount != 1:
        # Changed by someone else while Stripe was asked; Stripe's webhook brings its value.
        db.session.rollback()
        stored = db.session.get(Organisation, organisation_id, populate_existing=True)
        log.warning(
            "billing email changed during save: organisation=%s member=%s source=app",
            organisation.slug,
            member.id,
        )
        return _conflict(stored.billing_email)
    detail = {"customer": organisation.stripe_customer_id, "form": change.nonce}
    record_change(
        organisation, change.email, old=current, source="app", member=member, detail=detail
    )
    db.session.commit()
    return Result(
        Outcome.SAVED, change.email, 200, f"Saved. Stripe now sends invoices to {change.email}."
    )


CONFLICT_ADVICE = (
    "Nothing was saved. Save again to use the address in the field above instead, "
    "or cancel to keep it."
)


def _conflict(current: str, once_saved: bool = False) -> Result:
    """The address changed after the form was opened (or after it was saved once already)."""
    if once_saved:
        what = "This form was saved once already, and the billing email was changed after that:"
        what += f" it is now {current}."
    else:
        what = f"The billing email was changed meanwhile to {current}."
    return Result(Outcome.CONFLICT, current, 409, f"{what} {CONFLICT_ADVICE}")


def _not_confirmed(current: str) -> Result:
    return Result(
        Outcome.STRIPE_FAILED,
        current,
        502,
        "Stripe answered without the new address, so the billing email was not changed. "
        "Try again in a few minutes; if it keeps happening, please contact Petra support.",
    )


def _form_used(organisation_id: int, nonce: str) -> bool:
    """Whether a change was saved from the form opened with `nonce` (each is saved once)."""
    return (
        db.session.scalar(
            select(AuditEvent.id)
            .where(
                AuditEvent.organisation_id == organisation_id,
                AuditEvent.action == AUDIT_ACTION,
                AuditEvent.source == "app",
                AuditEvent.detail["form"].as_string() == nonce,
            )
            .limit(1)
        )
        is not None
    )


def _refusal(organisation: Organisation, change: Change) -> Result | None:
    """Why the change is not sent to Stripe at all, or None when it may be."""
    current = organisation.billing_email
    if change.email == current:
        return Result(
            Outcome.UNCHANGED, current, 200, f"Nothing to change: the billing email is {current}."
        )
    if _form_used(organisation.id, change.nonce):
        return _conflict(current, once_saved=True)
    if change.opened_with != current:
        return _conflict(current)
    if not organisation.stripe_customer_id:
        return Result(
            Outcome.NO_CUSTOMER,
            current,
            409,
            "Your organisation is not linked to a Stripe customer yet, so the billing email "
            "cannot be changed. Please contact Petra support.",
        )
    return None


def _update_stripe(organisation: Organisation, change: Change, stripe: StripeGateway):
    """Update the Stripe customer (after a warning about a shared address).

    Returns the email Stripe holds afterwards (CustomerEmail), or the Result when Stripe was
    not asked or did not answer.
    """
    customer_id = organisation.stripe_customer_id
    try:
        if not change.confirmed_shared:
            others = set(stripe.customer_ids_with_email(change.email)) - {customer_id}
            if others:
                return Result(
                    Outcome.SHARED,
                    organisation.billing_email,
                    409,
                    f"Another Stripe customer already uses {change.email}. Stripe's portal "
                    "login picks only one customer per address, so signing in with it may not "
                    "reach your organisation's billing. Confirm below to use it anyway.",
                )
        key = idempotency_key(customer_id, organisation.billing_email, change.email, change.nonce)
        return stripe.update_customer_email(customer_id, change.email, key)
    except StripeUnavailable as failure:
        status, message = _stripe_problem(failure)
        reason = failure.reason if isinstance(failure, StripeRequestFailed) else "error"
        outcome = Outcome.PENDING if reason in PENDING_REASONS else Outcome.STRIPE_FAILED
        return Result(outcome, organisation.billing_email, status, message)


def _log_refusal(organisation: Organisation, member: Member, result: Result) -> None:
    log.warning(
        "billing email not changed: organisation=%s member=%s source=app reason=%s status=%s",
        organisation.slug,
        member.id,
        result.outcome,
        result.status,
    )


class Settled(enum.StrEnum):
    LANDED = "landed"
    NOT_YET = "not_yet"


def settle_pending(organisation_id: int, awaited: str, stripe: StripeGateway) -> Settled:
    """Whether a change Stripe did not confirm in time (`awaited`) has landed: stored here
    already (the webhook brought it), or held by the Stripe customer now, which is then
    brought in as the webhook would. Stripe is the source of truth."""
    organisation = db.session.get(Organisation, organisation_id, populate_existing=True)
    if organisation.billing_email == awaited:
        return Settled.LANDED
    if not organisation.stripe_customer_id:
        return Settled.NOT_YET
    try:
        held = stripe.customer_email(organisation.stripe_customer_id)
    except StripeUnavailable:
        return Settled.NOT_YET
    if held != awaited:
        return Settled.NOT_YET
    try:
        with organisation_lock(organisation_id):
            organisation = locked_organisation(organisation_id)
            if organisation.billing_email != awaited:
                old = organisation.billing_email
                organisation.billing_email = awaited
                detail = {"customer": organisation.stripe_customer_id, "read": "customer"}
                record_change(organisation, awaited, old=old, source="stripe", detail=detail)
            db.session.commit()
    except OrganisationBusy:
        db.session.rollback()
        return Settled.NOT_YET
    return Settled.LANDED
