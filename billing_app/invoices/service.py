"""Invoices as members see them: Stripe's invoices turned into rows whose status a person can
act on (paid; open until its due date; overdue once that has passed, by the UTC date; void;
uncollectible), and the current address of an invoice's Stripe page or PDF."""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urlsplit

from billing_app.figures.months import Month
from billing_app.formats import format_day
from billing_app.logs import billing_log as log
from billing_app.models import Member, Organisation
from billing_app.stripe_gateway import (
    StripeGateway,
    StripeInvoice,
    StripeProblem,
    StripeRequestFailed,
    StripeUnavailable,
)

SHOWN = 12
"""How many invoices the page shows, newest first."""
FETCHED = 24
"""How many Stripe is asked for, so that drafts (not sent yet) can be left out."""
DAYS_UNTIL_DUE = 30

INVOICE_ID = re.compile(r"in_[A-Za-z0-9]{1,64}")

# Stripe's zero-decimal currencies: their amounts are whole units, not hundredths.
ZERO_DECIMAL = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)
THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])


class InvoiceState(enum.StrEnum):
    PAID = "paid"
    OPEN = "open"
    OVERDUE = "overdue"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"
    OTHER = "other"


def minor_units_to_amount(amount: int, currency: str) -> Decimal:
    """Stripe's integer amount in the currency's minor units as an exact Decimal."""
    code = currency.lower()
    places = 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2
    return Decimal(int(amount)).scaleb(-places)


def _utc_day(timestamp: int) -> dt.date:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).date()


@dataclass(frozen=True, slots=True)
class InvoiceRow:
    """One invoice as the page lists it."""

    id: str
    number: str
    issued_on: dt.date
    period_first: dt.date
    period_last: dt.date
    """The period's first and last day (inclusive), in UTC."""
    amount: Decimal
    currency: str
    state: InvoiceState
    stripe_status: str
    due_on: dt.date | None
    has_page: bool
    has_pdf: bool

    @property
    def month(self) -> Month | None:
        """The calendar month the invoice covers, when it covers exactly one."""
        month = Month.of(self.period_first)
        whole = self.period_first == month.first_day and self.period_last == month.end - ONE_DAY
        return month if whole else None

    @property
    def period_label(self) -> str:
        if self.month is not None:
            return self.month.label
        if self.period_first == self.period_last:
            return format_day(self.period_first)
        return f"{format_day(self.period_first)} to {format_day(self.period_last)}"

    @property
    def due_label(self) -> str | None:
        return format_day(self.due_on) if self.due_on else None

    @property
    def status_label(self) -> str:
        if self.state is InvoiceState.OTHER:
            return self.stripe_status.replace("_", " ").capitalize() or "Unknown"
        return self.state.value.capitalize()


ONE_DAY = dt.timedelta(days=1)


def invoice_state(status: str | None, due_on: dt.date | None, today: dt.date) -> InvoiceState:
    """The status a member sees: Stripe's, with an open invoice past its due date overdue."""
    if status == "open":
        return InvoiceState.OVERDUE if due_on is not None and due_on < today else InvoiceState.OPEN
    try:
        state = InvoiceState(status)
    except ValueError:
        return InvoiceState.OTHER
    return InvoiceState.OTHER if state is InvoiceState.OVERDUE else state


def invoice_row(invoice: StripeInvoice, today: dt.date) -> InvoiceRow:
    """The row of one Stripe invoice, seen on `today` (UTC)."""
    issued_on = _utc_day(invoice.created)
    start, end = invoice.period_start, invoice.period_end
    if start is None or end is None or end <= start:
        first = last = _utc_day(start) if start is not None else issued_on
    else:
        first, last = _utc_day(start), _utc_day(end - 1)
    due_on = _utc_day(invoice.due_date) if invoice.due_date is not None else None
    return InvoiceRow(
        id=invoice.id,
        number=invoice.number or invoice.id,
        issued_on=issued_on,
        period_first=first,
        period_last=last,
        amount=minor_units_to_amount(invoice.amount_due, invoice.currency),
        currency=invoice.currency,
        state=invoice_state(invoice.status, due_on, today),
        stripe_status=invoice.status or "",
        due_on=due_on,
        has_page=bool(invoice.hosted_invoice_url),
        has_pdf=bool(invoice.invoice_pdf),
    )


class InvoicesProblem(StripeProblem):
    """Stripe could not be asked for the organisation's invoices."""


class InvoiceNotFound(LookupError):
    """No invoice of the organisation's Stripe customer has this id."""


_PROBLEMS = {
    "timeout": (504, "Stripe did not answer in time", "Stripe is slow right now."),
    "unreachable": (503, "Stripe cannot be reached", "Petra could not connect to Stripe."),
    "busy": (503, "Stripe is busy", "Stripe asked Petra to slow down."),
    "missing": (
        409,
        "Stripe account not found",
        "The Stripe customer linked to your organisation no longer exists at Stripe. "
        "Contact Petra support to have it linked again.",
    ),
    "refused": (502, "Stripe refused the request", "This needs fixing on our side."),
}


def stripe_problem(failure: StripeUnavailable) -> InvoicesProblem:
    """The problem to show for a failed Stripe read, of the same kinds as the portal's."""
    reason = failure.reason if isinstance(failure, StripeRequestFailed) else "error"
    status, title, message = _PROBLEMS.get(
        reason,
        (502, "Stripe had a problem", "Stripe answered with an error; try again in a minute."),
    )
    return InvoicesProblem(status, reason, title, message)


@dataclass(frozen=True, slots=True)
class InvoiceList:
    """What the invoices section shows: the latest invoices, or why they cannot be shown."""

    rows: tuple[InvoiceRow, ...] = ()
    problem: InvoicesProblem | None = None
    linked: bool = True
    """Whether the organisation has a Stripe customer (else it has no invoices to show)."""

    @property
    def status(self) -> int:
        return self.problem.status if self.problem else 200

    @property
    def owed(self) -> tuple[InvoiceRow, ...]:
        """Invoices still to be paid (open or overdue, with an amount), oldest due first."""
        unpaid = [
            row
            for row in self.rows
            if row.state in (InvoiceState.OPEN, InvoiceState.OVERDUE) and row.amount > 0
        ]
        return tuple(sorted(unpaid, key=lambda row: (row.due_on or row.issued_on, row.id)))

    @property
    def amount_due(self) -> AmountDue | None:
        """What is owed, for the banner at the top of the page; None when nothing is."""
        owed = self.owed
        if not owed:
            return None
        currency = owed[0].currency
        same = [row for row in owed if row.currency == currency]
        overdue = tuple(row for row in owed if row.state is InvoiceState.OVERDUE)
        return AmountDue(
            total=sum((row.amount for row in same), Decimal(0)),
            currency=currency,
            invoices=tuple(owed),
            overdue=overdue,
            first=overdue[0] if overdue else owed[0],
        )


@dataclass(frozen=True, slots=True)
class AmountDue:
    """The organisation's unpaid invoices: their total (in the first one's currency), the
    overdue ones, and the one to pay first (the oldest overdue, else the next due)."""

    total: Decimal
    currency: str
    invoices: tuple[InvoiceRow, ...]
    overdue: tuple[InvoiceRow, ...]
    first: InvoiceRow

    @property
    def past_due(self) -> bool:
        return bool(self.overdue)

    @property
    def overdue_total(self) -> Decimal:
        return sum(
            (row.amount for row in self.overdue if row.currency == self.currency), Decimal(0)
        )


def latest_invoices(
    organisation: Organisation, *, stripe: StripeGateway, today: dt.date
) -> InvoiceList:
    """The organisation's last `SHOWN` invoices sent by Stripe, newest first."""
    customer = organisation.stripe_customer_id
    if not customer:
        return InvoiceList(linked=False)
    try:
        invoices = stripe.list_invoices(customer, limit=FETCHED)
    except StripeUnavailable as failure:
        problem = stripe_problem(failure)
        _log_failure(organisation, "list", problem.reason)
        return InvoiceList(problem=problem)
    sent = [i for i in invoices if i.customer == customer and i.status != "draft"]
    return InvoiceList(rows=tuple(invoice_row(i, today) for i in sent[:SHOWN]))


def invoice_link(member: Member, invoice_id: str, *, pdf: bool, stripe: StripeGateway) -> str:
    """The current address of the invoice's Stripe page (or PDF), asked of Stripe now.

    Raises InvoiceNotFound unless it is an invoice of the member's organisation that has one,
    and InvoicesProblem when Stripe cannot be asked.
    """
    organisation = member.organisation
    customer = organisation.stripe_customer_id
    if not customer or not INVOICE_ID.fullmatch(invoice_id):
        raise InvoiceNotFound(invoice_id)
    try:
        invoice = stripe.invoice(invoice_id)
    except StripeUnavailable as failure:
        problem = stripe_problem(failure)
        _log_failure(organisation, "open", problem.reason)
        raise problem from failure
    if invoice is None or invoice.customer != customer:
        if invoice is not None:
            fields = {"member_id": member.id, "organisation": organisation.slug}
            log.warning(
                "invoice of another customer asked for: member=%s organisation=%s",
                *fields.values(),
                extra=fields,
            )
        raise InvoiceNotFound(invoice_id)
    url = invoice.invoice_pdf if pdf else invoice.hosted_invoice_url
    if not url or urlsplit(url).scheme not in ("https", "http"):
        raise InvoiceNotFound(invoice_id)
    return url


def _log_failure(organisation: Organisation, what: str, reason: str) -> None:
    fields = {"organisation": organisation.slug, "invoices": what, "reason": reason}
    log.warning(
        "invoices not read from Stripe: organisation=%s invoices=%s reason=%s",
        *fields.values(),
        extra=fields,
    )
