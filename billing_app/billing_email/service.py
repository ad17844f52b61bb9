"""The organisation's billing email: validation, saving it (Stripe first), and Stripe's changes.

Stripe is the source of truth. A save updates the Stripe customer first, with an idempotency
key, and only then writes the organisation and an audit event in one transaction. Stripe's
`customer.updated` webhooks bring changes made elsewhere back, each event once, never letting
an older event overwrite a newer value.

Saves and Stripe's events for one organisation are serialised: on PostgreSQL by the row lock on
the organisation, on SQLite (which has no row locks) by a file lock per organisation beside the
database file, which holds across threads and worker processes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from email_validator import EmailNotValidError, validate_email
from filelock import FileLock, Timeout
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from billing_app.extensions import db
from billing_app.logs import billing_log as log
from billing_app.models import AuditEvent, Member, Organisation, StripeEvent, utcnow
from billing_app.stripe_gateway import StripeGateway, StripeRequestFailed, StripeUnavailable

AUDIT_ACTION = "billing_email_changed"
MAX_LENGTH = 254
HISTORY_LENGTH = 10
SAVE_RATE_LIMIT = "10 per minute"
TOO_MANY_SAVES = (
    "That is a lot of saves in a short time, so this one was not made. "
    "Wait a minute, then save again."
)
CLOCK_SLACK = 1
LINE_BREAKS = frozenset("\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029")
EXAMPLE = "billing@example.com"


class InvalidEmail(ValueError):
    """The address is not acceptable; the message says why, for a person."""


def normalise(raw: str | None) -> str:
    """The normalised address for `raw` as typed, or InvalidEmail saying what is wrong."""
    if raw is None or not raw.strip():
        raise InvalidEmail("Enter the billing email address.")
    if any(char in LINE_BREAKS for char in raw):
        raise InvalidEmail("Enter the address on a single line, without line breaks.")
    address = raw.strip()
    if len(address) > MAX_LENGTH:
        raise InvalidEmail(
            f"That address is {len(address)} characters long; "
            f"an email address has at most {MAX_LENGTH}."
        )
    if "<" in address or ">" in address:
        raise InvalidEmail(
            f"Enter only the address, without a name or angle brackets (like {EXAMPLE})."
        )
    if '"' in address:
        raise InvalidEmail(
            f"Addresses with quotation marks are not accepted. Use a plain address like {EXAMPLE}."
        )
    try:
        valid = validate_email(
            address,
            check_deliverability=False,
            allow_quoted_local=False,
            allow_display_name=False,
            allow_domain_literal=False,
        )
    except EmailNotValidError as error:
        raise InvalidEmail(f"That is not a valid email address. {error}") from None
    if len(valid.normalized) > MAX_LENGTH:
        raise InvalidEmail(f"An email address has at most {MAX_LENGTH} characters.")
    return valid.normalized


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
            Outcome.BUSY,
            Outcome.TOO_MANY,
            Outcome.NO_CUSTOMER,
        )


STRIPE_PROBLEMS = {
    "timeout": (
        504,
        "Stripe did not answer in time, so the billing email was not changed in Petra. "
        "Save again to retry; the change will not be made twice.",
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
STRIPE_ERROR = (
    502,
    "Stripe had a problem on its side and did not take the change, so the billing email was "
    "not changed. Try again in a few minutes.",
)


def _stripe_problem(failure: StripeUnavailable) -> tuple[int, str]:
    reason = failure.reason if isinstance(failure, StripeRequestFailed) else "error"
    return STRIPE_PROBLEMS.get(reason, STRIPE_ERROR)


LOCK_WAIT = 45.0
"""Seconds a save or an event waits for another change of the same organisation to finish
(longer than a Stripe request with its retries takes)."""
BUSY = (
    "Another change of the billing email is being saved right now, so this one was not made. "
    "Wait a moment, then save again."
)


class OrganisationBusy(RuntimeError):
    """Another change of the organisation's billing email did not finish within LOCK_WAIT."""


@contextlib.contextmanager
def organisation_lock(organisation_id: int) -> Iterator[None]:
    """Hold the organisation's billing email for one change, across threads and processes.

    PostgreSQL needs nothing more than the row lock `_locked_organisation` takes. SQLite has
    no row locks (and locking the whole database for a Stripe request would stop every other
    write), so a file lock per organisation, beside the database file, stands in for it.
    """
    url = db.engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        yield
        return
    database = Path(url.database).resolve()
    lock = FileLock(
        database.with_name(f"{database.name}.organisation-{organisation_id}.lock"),
        timeout=LOCK_WAIT,
    )
    try:
        lock.acquire()
    except Timeout:
        raise OrganisationBusy(organisation_id) from None
    try:
        yield
    finally:
        lock.release()


def _locked_organisation(organisation_id: int) -> Organisation:
    """The organisation, freshly read and locked for this transaction where the database can."""
    statement = (
        select(Organisation)
        .where(Organisation.id == organisation_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return db.session.execute(statement).scalar_one()


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
    organisation = _locked_organisation(organisation_id)
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
    _record(organisation, change.email, old=current, source="app", member=member, detail=detail)
    db.session.commit()
    return Result(
        Outcome.SAVED, change.email, 200, f"Saved. Stripe now sends invoices to {change.email}."
    )


CONFLICT_ADVICE = (
    "Nothing was saved. Save again to replace it with the address below, or cancel to keep it."
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
        return Result(Outcome.STRIPE_FAILED, organisation.billing_email, status, message)


def _record(
    organisation: Organisation,
    new: str,
    *,
    old: str,
    source: str,
    member: Member | None = None,
    detail: dict | None = None,
) -> None:
    """Add the audit event of a change and log it (without the addresses)."""
    db.session.add(
        AuditEvent(
            organisation_id=organisation.id,
            member_id=member.id if member is not None else None,
            action=AUDIT_ACTION,
            source=source,
            old_value=old,
            new_value=new,
            detail=detail,
        )
    )
    log.info(
        "billing email changed: organisation=%s member=%s source=%s",
        organisation.slug,
        member.id if member is not None else None,
        source,
    )


def _log_refusal(organisation: Organisation, member: Member, result: Result) -> None:
    log.warning(
        "billing email not changed: organisation=%s member=%s source=app reason=%s status=%s",
        organisation.slug,
        member.id,
        result.outcome,
        result.status,
    )


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
        organisation = _locked_organisation(known)
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
    _record(
        organisation,
        email,
        old=old,
        source="stripe",
        detail={"event": event.id, "customer": organisation.stripe_customer_id},
    )
    return EventOutcome.APPLIED


@dataclass(frozen=True)
class HistoryEntry:
    when: dt.datetime
    who: str
    old: str | None
    new: str | None


SOURCE_NAMES = {"stripe": "Stripe", "import": "Data import", "staff": "Petra staff"}


def history(organisation_id: int, limit: int = HISTORY_LENGTH) -> list[HistoryEntry]:
    """The latest billing-email changes, newest first."""
    events = db.session.scalars(
        select(AuditEvent)
        .where(AuditEvent.organisation_id == organisation_id, AuditEvent.action == AUDIT_ACTION)
        .options(joinedload(AuditEvent.member))
        .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
        .limit(limit)
    )
    return [
        HistoryEntry(
            when=_as_utc(event.created_at),
            who=event.member.name
            if event.member is not None
            else SOURCE_NAMES.get(event.source, "Petra"),
            old=event.old_value,
            new=event.new_value,
        )
        for event in events
    ]


def _as_utc(value: dt.datetime | None) -> dt.datetime:
    if value is None:
        return utcnow()
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
