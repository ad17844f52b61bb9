"""Billing contacts: up to ten extra addresses per organisation (the billing email's address
rules; unconfirmed ones count, removed ones do not; no address twice), each confirmed through
a single-use link valid for 7 days before it gets anything. Every change is audited."""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import html
import logging
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from billing_app.extensions import db
from billing_app.models import AuditEvent, Member, Organisation, utcnow
from billing_app.notifications import adapters, mail, messages
from billing_app.notifications.models import AlertSettings, BillingContact

MAX_CONTACTS = 10
LINK_VALID = dt.timedelta(days=7)
ADD_RATE_LIMIT = "10 per minute"
TOO_MANY_ADDS = "That is a lot of contacts added in a short time. Wait a minute, then try again."
MAIL_NOT_SET_UP = (
    "Mail is not set up on this server yet, so no confirmation link can be sent. "
    "Ask your Petra administrator to set PUBLIC_URL."
)

log = logging.getLogger("billing_app.notifications")

ADDED, CONFIRMED, REMOVED, UNSUBSCRIBED = (
    "billing_contact_added",
    "billing_contact_confirmed",
    "billing_contact_removed",
    "billing_contact_unsubscribed",
)


@dataclass(frozen=True, slots=True)
class AddResult:
    ok: bool
    status: int
    message: str
    email: str | None = None


def live_contacts(organisation_id: int) -> list[BillingContact]:
    """The organisation's contacts that are not removed, oldest first."""
    return list(
        db.session.scalars(
            select(BillingContact)
            .where(
                BillingContact.organisation_id == organisation_id,
                BillingContact.removed_at.is_(None),
            )
            .order_by(BillingContact.created_at, BillingContact.id)
        )
    )


def confirmed_addresses(organisation_id: int) -> list[tuple[int, str]]:
    """(contact id, address) of every confirmed, live contact: the only ones ever mailed."""
    return list(
        db.session.execute(
            select(BillingContact.id, BillingContact.email)
            .where(
                BillingContact.organisation_id == organisation_id,
                BillingContact.removed_at.is_(None),
                BillingContact.confirmed_at.is_not(None),
            )
            .order_by(BillingContact.id)
        ).tuples()
    )


def _count(organisation_id: int) -> int:
    return db.session.scalar(
        select(func.count(BillingContact.id)).where(
            BillingContact.organisation_id == organisation_id,
            BillingContact.removed_at.is_(None),
        )
    )


def _audit(
    organisation_id: int, member: Member | None, action: str, email: str, *, old: bool = False
) -> None:
    db.session.add(
        AuditEvent(
            organisation_id=organisation_id,
            member_id=member.id if member else None,
            action=action,
            source="app",
            old_value=email if old else None,
            new_value=None if old else email,
        )
    )


def add(organisation: Organisation, member: Member, raw: str | None) -> AddResult:
    """Add a contact and mail it its confirmation link (through the outbox)."""
    try:
        email = adapters.normalise_address(raw)
    except adapters.InvalidEmail as problem:
        return AddResult(False, 400, str(problem).replace("billing email", "contact's"))
    # Serialise adds of one organisation (a row lock on PostgreSQL; SQLite has one writer).
    db.session.scalar(
        select(Organisation.id).where(Organisation.id == organisation.id).with_for_update()
    )
    if email.lower() == organisation.billing_email.lower():
        return _refused(
            409, f"{email} is the billing email: it gets the invoices from Stripe already."
        )
    existing = {contact.email.lower() for contact in live_contacts(organisation.id)}
    if email.lower() in existing:
        return _refused(409, f"{email} is a billing contact already.")
    if len(existing) >= MAX_CONTACTS:
        return _refused(
            409,
            f"An organisation has at most {MAX_CONTACTS} billing contacts, waiting ones "
            "included. Remove one to add another.",
        )
    contact = BillingContact(organisation_id=organisation.id, email=email)
    db.session.add(contact)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return AddResult(False, 409, f"{email} is a billing contact already.")
    if _count(organisation.id) > MAX_CONTACTS:
        return _refused(409, f"An organisation has at most {MAX_CONTACTS} billing contacts.")
    _audit(organisation.id, member, ADDED, email)
    if not _send_link(organisation, contact):
        return _refused(503, MAIL_NOT_SET_UP)
    db.session.commit()
    return AddResult(
        True,
        200,
        f"{email} was added. It gets mail once it confirms with the link sent to it.",
        email,
    )


def _refused(status: int, message: str) -> AddResult:
    db.session.rollback()
    return AddResult(False, status, message)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _send_link(organisation: Organisation, contact: BillingContact) -> bool:
    """A fresh single-use link (the old one stops working), mailed through the outbox; False
    when mail is not set up (PUBLIC_URL missing), which is logged."""
    try:
        _queue_link(organisation, contact)
    except mail.MailNotConfigured as problem:
        log.error("billing contact not added: %s", problem)
        return False
    return True


def _queue_link(organisation: Organisation, contact: BillingContact) -> None:
    token = secrets.token_urlsafe(32)
    contact.token_hash = _hash(token)
    contact.token_expires_at = utcnow() + LINK_VALID
    contact.confirmations_sent += 1
    db.session.flush()
    url = messages.link("notifications.confirm", contact_id=contact.id, token=token)
    name = organisation.name
    text = (
        f"{name} added {contact.email} as a billing contact in Petra: it would get the "
        "monthly statement and the budget and growth alerts.\n\n"
        f"To confirm, open this link within 7 days and press Confirm:\n{url}\n\n"
        "If you do not want these messages, ignore this one: nothing is sent until you confirm."
    )
    body = (
        f"<p>{html.escape(name)} added {html.escape(contact.email)} as a billing contact in "
        "Petra: it would get the monthly statement and the budget and growth alerts.</p>"
        f'<p><a href="{html.escape(url)}">Confirm this address</a> (the link works for 7 days, '
        "once).</p><p>If you do not want these messages, ignore this one: nothing is sent until "
        "you confirm.</p>"
    )
    draft = mail.Draft(
        recipient=contact.email,
        subject=mail.subject_for(name, "Confirm you want Petra billing mail"),
        text=text,
        html=body,
        unsubscribe_url=messages.unsubscribe_link(organisation.id, contact.id),
    )
    messages.queue(
        organisation, "confirmation", draft, f"confirm:{contact.id}:{contact.confirmations_sent}"
    )


def resend(organisation: Organisation, contact_id: int) -> AddResult:
    """Mail a waiting contact a new link."""
    contact = _find(organisation.id, contact_id)
    if contact is None:
        return AddResult(False, 404, "That contact is not on the list any more.")
    if contact.confirmed:
        return AddResult(False, 409, f"{contact.email} has confirmed already.")
    if not _send_link(organisation, contact):
        return _refused(503, MAIL_NOT_SET_UP)
    db.session.commit()
    return AddResult(True, 200, f"A new confirmation link was sent to {contact.email}.")


def remove(organisation: Organisation, member: Member, contact_id: int) -> AddResult:
    """Take a contact off the list (its history stays)."""
    contact = _find(organisation.id, contact_id)
    if contact is None:
        return AddResult(False, 404, "That contact is not on the list any more.")
    contact.removed_at = utcnow()
    contact.token_hash = None
    _audit(organisation.id, member, REMOVED, contact.email, old=True)
    db.session.commit()
    return AddResult(True, 200, f"{contact.email} was removed.")


def _find(organisation_id: int, contact_id: int) -> BillingContact | None:
    contact = db.session.get(BillingContact, contact_id)
    if contact is None or contact.organisation_id != organisation_id or contact.removed_at:
        return None
    return contact


# --- The confirmation link ------------------------------------------------------------------


class LinkState(enum.StrEnum):
    VALID = "valid"
    CONFIRMED = "confirmed"
    USED = "used"
    EXPIRED = "expired"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class Link:
    state: LinkState
    email: str | None = None
    organisation_name: str | None = None


def check_link(contact_id: int, token: str, now: dt.datetime | None = None) -> Link:
    """What a confirmation link is worth, changing nothing (mail scanners open links)."""
    contact = db.session.get(BillingContact, contact_id)
    if contact is None or contact.removed_at is not None:
        return Link(LinkState.INVALID)
    organisation = db.session.get(Organisation, contact.organisation_id)
    found = Link(LinkState.INVALID, contact.email, organisation.name)
    if contact.token_hash is None:
        state = LinkState.USED
        return Link(state, contact.email, organisation.name)
    if not hmac.compare_digest(contact.token_hash, _hash(token)):
        return found
    expires = contact.token_expires_at
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=dt.UTC)
    if (now or utcnow()) >= expires:
        return Link(LinkState.EXPIRED, contact.email, organisation.name)
    return Link(LinkState.VALID, contact.email, organisation.name)


def confirm(contact_id: int, token: str, now: dt.datetime | None = None) -> Link:
    """Confirm the contact if the link is valid; the link is used up either way it succeeds."""
    checked = check_link(contact_id, token, now)
    if checked.state is not LinkState.VALID:
        return checked
    contact = db.session.get(BillingContact, contact_id, with_for_update=True)
    if contact.token_hash is None:  # confirmed meanwhile
        db.session.rollback()
        return Link(LinkState.USED, checked.email, checked.organisation_name)
    contact.token_hash = None
    contact.token_expires_at = None
    contact.confirmed_at = now or utcnow()
    _audit(contact.organisation_id, None, CONFIRMED, contact.email)
    db.session.commit()
    return Link(LinkState.CONFIRMED, checked.email, checked.organisation_name)


# --- Unsubscribing ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    ok: bool
    message: str


def describe_unsubscribe(token: str) -> Unsubscribe:
    """What unsubscribing with `token` would do, changing nothing."""
    read = messages.read_unsubscribe_token(token)
    if read is None:
        return Unsubscribe(False, "This unsubscribe link is not valid. Copy it from the message.")
    organisation = db.session.get(Organisation, read[0])
    if organisation is None:
        return Unsubscribe(False, "This unsubscribe link is not valid any more.")
    if read[1] is None:
        return Unsubscribe(True, f"Stop budget and growth alerts to {organisation.billing_email}.")
    contact = db.session.get(BillingContact, read[1])
    if contact is None or contact.removed_at is not None:
        return Unsubscribe(False, "This address is unsubscribed already: it gets nothing more.")
    return Unsubscribe(True, f"Stop all Petra billing mail to {contact.email}.")


def unsubscribe(token: str) -> Unsubscribe:
    """Remove the contact of `token`, or stop alerts to the billing email."""
    described = describe_unsubscribe(token)
    if not described.ok:
        return described
    organisation_id, contact_id = messages.read_unsubscribe_token(token)
    if contact_id is None:
        organisation = db.session.get(Organisation, organisation_id)
        settings = db.session.get(AlertSettings, organisation_id)
        if settings is None:
            settings = AlertSettings(organisation_id=organisation_id)
            db.session.add(settings)
        settings.billing_email_unsubscribed = True
        _audit(organisation_id, None, UNSUBSCRIBED, organisation.billing_email, old=True)
        db.session.commit()
        return Unsubscribe(True, f"{organisation.billing_email} gets no more alerts.")
    contact = db.session.get(BillingContact, contact_id, with_for_update=True)
    contact.removed_at = utcnow()
    contact.token_hash = None
    _audit(organisation_id, None, UNSUBSCRIBED, contact.email, old=True)
    db.session.commit()
    return Unsubscribe(True, f"{contact.email} is unsubscribed and gets no more billing mail.")
