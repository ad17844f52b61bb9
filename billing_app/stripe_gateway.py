"""The one way the app talks to Stripe: the official SDK, with explicit timeouts and retries."""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import requests
import stripe
from flask import Flask, current_app


@dataclass
class StripeProblem(Exception):
    """Stripe could not do what a member asked: the HTTP status to answer, a reason for the
    log, and the title and message the member reads."""

    status: int
    reason: str
    title: str
    message: str

    def __str__(self) -> str:
        return f"{self.title}: {self.message}"


class StripeUnavailable(RuntimeError):
    """Stripe could not be reached or refused the request; the message says so for a person."""


class StripeRequestFailed(StripeUnavailable):
    """A Stripe request failed; `reason`: timeout, in_progress, unreachable, busy, missing,
    refused, error."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def stripe_failure(error: stripe.StripeError) -> StripeRequestFailed:
    """The person-readable failure for an error raised by the Stripe SDK."""
    if isinstance(error, stripe.APIConnectionError):
        if isinstance(error.__cause__, requests.exceptions.Timeout):
            return StripeRequestFailed("Stripe did not answer in time.", "timeout")
        return StripeRequestFailed("Stripe could not be reached.", "unreachable")
    if isinstance(error, stripe.RateLimitError):
        return StripeRequestFailed("Stripe is busy; try again shortly.", "busy")
    if error.http_status == 409 and getattr(error.error, "type", None) == "idempotency_error":
        # The first request with this idempotency key is still running at Stripe: it may yet
        # take effect, and a later retry gets its answer.
        return StripeRequestFailed("Stripe is still answering the first attempt.", "in_progress")
    if error.http_status == 409:
        # A conflict: an earlier attempt with the same idempotency key is still being answered,
        # or the object is locked by another request. Trying again shortly is the remedy.
        return StripeRequestFailed("Stripe is still working on an earlier request.", "busy")
    if isinstance(error, stripe.InvalidRequestError) and error.code == "resource_missing":
        return StripeRequestFailed("Stripe does not know this customer.", "missing")
    if isinstance(error, stripe.APIError) or (error.http_status or 0) >= 500:
        return StripeRequestFailed("Stripe had a problem on its side.", "error")
    return StripeRequestFailed("Stripe refused the request.", "refused")


@dataclass(frozen=True, slots=True)
class StripeInvoice:
    """An invoice as Stripe holds it: amounts in integer minor units, times in Unix seconds."""

    id: str
    customer: str | None
    number: str | None
    status: str | None
    amount_due: int
    amount_paid: int
    currency: str
    created: int
    due_date: int | None
    period_start: int | None
    period_end: int | None
    hosted_invoice_url: str | None
    invoice_pdf: str | None


def _invoice(invoice: stripe.Invoice) -> StripeInvoice:
    def field(name: str):
        return getattr(invoice, name, None)

    customer = field("customer")
    return StripeInvoice(
        id=invoice.id,
        customer=customer if isinstance(customer, str) else getattr(customer, "id", None),
        number=field("number"),
        status=field("status"),
        amount_due=int(field("amount_due") or 0),
        amount_paid=int(field("amount_paid") or 0),
        currency=str(field("currency") or ""),
        created=int(field("created") or 0),
        due_date=field("due_date"),
        period_start=field("period_start"),
        period_end=field("period_end"),
        hosted_invoice_url=field("hosted_invoice_url"),
        invoice_pdf=field("invoice_pdf"),
    )


@dataclass(frozen=True)
class CustomerEmail:
    """The email a Stripe customer holds, as of `at` (Stripe's clock, Unix seconds).

    `replayed`: Stripe answered a request it had already seen with the same idempotency key
    by replaying its first answer; `email` is then what Stripe holds now, asked afresh.
    """

    email: str | None
    at: int
    replayed: bool = False


@dataclass
class StripeGateway:
    """Billing operations on the organisation's Stripe customer."""

    client: stripe.StripeClient
    reader: stripe.StripeClient | None = None
    """The client for reads a page waits on (invoices): a short timeout and few retries."""

    def create_customer(self, *, name: str, email: str, slug: str) -> str:
        """Create a Stripe customer for an organisation and return its id."""
        try:
            customer = self.client.v1.customers.create(
                params={"name": name, "email": email, "metadata": {"organisation": slug}}
            )
        except stripe.StripeError as error:
            raise stripe_failure(error) from error
        return customer.id

    def customer_exists(self, customer_id: str) -> bool:
        """Whether Stripe knows this customer (and it is not deleted)."""
        try:
            customer = self.client.v1.customers.retrieve(customer_id)
        except stripe.InvalidRequestError as error:
            if error.code == "resource_missing" or error.http_status == 404:
                return False
            raise stripe_failure(error) from error
        except stripe.StripeError as error:
            raise stripe_failure(error) from error
        return not getattr(customer, "deleted", False)

    def create_portal_session(self, customer_id: str, return_url: str) -> str:
        """Create a short-lived billing portal session for the customer and return its URL."""
        try:
            session = self.client.v1.billing_portal.sessions.create(
                params={"customer": customer_id, "return_url": return_url}
            )
        except stripe.StripeError as error:
            raise stripe_failure(error) from error
        return session.url

    def update_customer_email(
        self, customer_id: str, email: str, idempotency_key: str
    ) -> CustomerEmail:
        """Set the customer's email; return the email Stripe holds afterwards, and when.

        The idempotency key makes a retried request take effect once. A replayed answer
        (`Idempotent-Replayed`) tells what Stripe did the first time, not what it holds now,
        so the customer is then retrieved to tell that.
        """
        try:
            customer = self.client.v1.customers.update(
                customer_id,
                params={"email": email},
                options={"idempotency_key": idempotency_key},
            )
            response = customer.last_response
            if response is None or response.headers.get("Idempotent-Replayed") != "true":
                return CustomerEmail(getattr(customer, "email", None), stripe_time(response))
            current = self.client.v1.customers.retrieve(customer_id)
        except stripe.StripeError as error:
            raise stripe_failure(error) from error
        held = None if getattr(current, "deleted", False) else getattr(current, "email", None)
        return CustomerEmail(held, stripe_time(current.last_response), replayed=True)

    def customer_ids_with_email(self, email: str, limit: int = 10) -> list[str]:
        """The ids of Stripe customers whose email is exactly `email` (up to `limit`)."""
        try:
            customers = self.client.v1.customers.list(params={"email": email, "limit": limit})
        except stripe.StripeError as error:
            raise stripe_failure(error) from error
        return [customer.id for customer in customers.data]

    def list_invoices(self, customer_id: str, limit: int = 12) -> list[StripeInvoice]:
        """The customer's latest invoices, newest first (up to `limit`, drafts included)."""
        try:
            invoices = (self.reader or self.client).v1.invoices.list(
                params={"customer": customer_id, "limit": limit}
            )
        except stripe.StripeError as error:
            raise stripe_failure(error) from error
        return [_invoice(invoice) for invoice in invoices.data]

    def invoice(self, invoice_id: str) -> StripeInvoice | None:
        """One invoice with its current links (Stripe's links expire); None if Stripe has none."""
        try:
            invoice = (self.reader or self.client).v1.invoices.retrieve(invoice_id)
        except stripe.InvalidRequestError as error:
            if error.code == "resource_missing" or error.http_status == 404:
                return None
            raise stripe_failure(error) from error
        except stripe.StripeError as error:
            raise stripe_failure(error) from error
        return _invoice(invoice)

    def customer_email(self, customer_id: str) -> str | None:
        """The customer's current email at Stripe."""
        try:
            customer = self.client.v1.customers.retrieve(customer_id)
        except stripe.StripeError as error:
            raise stripe_failure(error) from error
        return getattr(customer, "email", None)


def stripe_time(response: stripe.StripeResponse | None) -> int:
    """Stripe's clock at `response` (its Date header), or ours when it has none."""
    date = response.headers.get("Date") if response is not None else None
    try:
        return int(parsedate_to_datetime(date).timestamp()) if date else int(time.time())
    except (TypeError, ValueError):
        return int(time.time())


def build_client(app: Flask, *, reads: bool = False) -> stripe.StripeClient:
    """A Stripe client configured from the app's settings; `reads`: the one for page reads."""
    base = app.config.get("STRIPE_API_BASE")
    prefix = "STRIPE_READ_" if reads else "STRIPE_"
    return stripe.StripeClient(
        app.config.get("STRIPE_SECRET_KEY") or "sk_missing",
        base_addresses={"api": base} if base else None,
        max_network_retries=app.config[prefix + "MAX_RETRIES"],
        http_client=stripe.RequestsClient(timeout=app.config[prefix + "TIMEOUT"]),
    )


def init_app(app: Flask) -> None:
    app.extensions["stripe_gateway"] = StripeGateway(
        build_client(app), build_client(app, reads=True)
    )


def gateway() -> StripeGateway:
    """The app's Stripe gateway."""
    return current_app.extensions["stripe_gateway"]
