"""The monthly statement: when Stripe finalizes an organisation's invoice (the signed
`invoice.finalized` webhook), each confirmed contact is mailed its number, period, amount,
due date, the Stripe page and PDF links as Stripe gives them when the mail is built, and the
`tenants.csv` of the month of the invoice's `period_start` (UTC).

The webhook records the invoice (`Statement`, keyed by the invoice id: once per invoice
however many events) and queues the build; the worker fetches the invoice from Stripe and
puts the messages in the outbox (keyed by invoice and recipient). The billing email gets
Stripe's own mail and no second copy."""

from __future__ import annotations

import datetime as dt
import html
import logging
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from billing_app.extensions import db
from billing_app.models import Organisation, utcnow
from billing_app.notifications import adapters, contacts, mail, messages
from billing_app.notifications.models import Statement

log = logging.getLogger("billing_app.notifications")


@dataclass(frozen=True, slots=True)
class Recorded:
    """What an `invoice.finalized` event did: `queued` the statement, or why not."""

    outcome: str
    invoice_id: str | None = None


def record(event: dict) -> Recorded:
    """Record an `invoice.finalized` event's invoice once; the caller queues the build."""
    invoice = (event.get("data") or {}).get("object") or {}
    invoice_id, customer = invoice.get("id"), invoice.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    if not isinstance(invoice_id, str) or not isinstance(customer, str):
        return Recorded("ignored")
    organisation_id = db.session.scalar(
        select(Organisation.id).where(Organisation.stripe_customer_id == customer)
    )
    if organisation_id is None:
        return Recorded("unknown_customer")
    db.session.add(
        Statement(
            invoice_id=invoice_id,
            organisation_id=organisation_id,
            event_id=str(event.get("id", "")),
        )
    )
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return Recorded("duplicate", invoice_id)
    return Recorded("queued", invoice_id)


def build(invoice_id: str, today: dt.date) -> int:
    """Fetch the invoice from Stripe and queue its statement to each confirmed contact; the
    number of messages queued (0 once built). Raises StripeUnavailable to be retried."""
    statement = db.session.get(Statement, invoice_id)
    if statement is None or statement.built_at is not None:
        db.session.rollback()
        return 0
    organisation = db.session.get(Organisation, statement.organisation_id)
    invoice = adapters.fetch_invoice(invoice_id)
    if invoice is None or invoice.customer != organisation.stripe_customer_id:
        log.warning("statement not sent: Stripe has no invoice %s for this customer", invoice_id)
        statement.built_at = utcnow()
        db.session.commit()
        return 0
    start = dt.datetime.fromtimestamp(invoice.period_start or invoice.created, dt.UTC).date()
    month = adapters.Month.of(start)
    attachment = None
    try:
        name, body = adapters.tenants_csv(organisation, month, today)
        attachment = mail.Attachment(name, body)
    except adapters.NoPriceError:
        log.warning("statement of %s sent without tenants.csv: %s has no price", invoice_id, month)
    queued = 0
    for contact_id, address in contacts.confirmed_addresses(organisation.id):
        draft = _draft(organisation, invoice, month, address, contact_id, attachment)
        messages.queue(organisation, "statement", draft, f"statement:{invoice_id}:{address}")
        queued += 1
    statement.built_at = utcnow()
    try:
        db.session.commit()
    except IntegrityError:  # another worker built it at the same time
        db.session.rollback()
        return 0
    return queued


def pending() -> list[str]:
    """Invoices recorded but not built yet (a build the worker could not finish)."""
    return list(
        db.session.scalars(select(Statement.invoice_id).where(Statement.built_at.is_(None)))
    )


def _day(timestamp: int | None) -> str:
    if not timestamp:
        return "—"
    day = dt.datetime.fromtimestamp(timestamp, dt.UTC).date()
    return f"{day.day} {day:%B %Y}"


def _amount(minor: int, currency: str) -> str:
    return f"{(Decimal(minor) / 100).quantize(Decimal('0.01')):,} {currency.upper()}"


def _draft(
    organisation: Organisation,
    invoice: adapters.StripeInvoice,
    month: adapters.Month,
    address: str,
    contact_id: int,
    attachment: mail.Attachment | None,
) -> mail.Draft:
    number = invoice.number or invoice.id
    period_end = (invoice.period_end or invoice.created) - 1
    facts = [
        ("Invoice", number),
        ("Period", f"{_day(invoice.period_start)} to {_day(period_end)}"),
        ("Amount due", _amount(invoice.amount_due, invoice.currency)),
        ("Due", f"{_day(invoice.due_date)} (Net 30)"),
    ]
    links = [
        ("Invoice page", invoice.hosted_invoice_url),
        ("Invoice PDF", invoice.invoice_pdf),
    ]
    lines = [f"{label}: {value}" for label, value in facts]
    lines += [f"{label}: {url}" for label, url in links if url]
    note = (
        f"Attached: {attachment.filename}, one row per tenant for {month.label}."
        if attachment
        else ""
    )
    text = (
        f"{organisation.name}'s Petra invoice for {month.label}.\n\n"
        + "\n".join(lines)
        + f"\n\n{note}\n"
    )
    rows = "".join(
        f"<tr><th scope=row>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
        for label, value in facts
    )
    anchors = " · ".join(
        f'<a href="{html.escape(url)}">{html.escape(label)}</a>' for label, url in links if url
    )
    body = (
        f"<p>{html.escape(organisation.name)}'s Petra invoice for {html.escape(month.label)}.</p>"
        f"<table>{rows}</table><p>{anchors}</p><p>{html.escape(note)}</p>"
    )
    return mail.Draft(
        recipient=address,
        subject=mail.subject_for(organisation.name, f"Invoice {number} for {month.label}"),
        text=text,
        html=body,
        unsubscribe_url=messages.unsubscribe_link(organisation.id, contact_id),
        attachments=(attachment,) if attachment else (),
    )
