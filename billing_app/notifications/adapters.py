"""The one place the notifications call into other features' internals: the billing-email
address rules, the month's figures and projection, the `tenants.csv` export, the Stripe
gateway and the job queue. When those move, only this file follows them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from flask import Flask, current_app
from huey import RedisHuey, SqliteHuey
from huey.api import Huey

from billing_app.billing_email.addresses import InvalidEmail, normalise
from billing_app.config import QUEUE_SCHEMES
from billing_app.exports import csv as exports_csv
from billing_app.figures.cache import month_headline, month_summary
from billing_app.figures.calculator import MonthTotals
from billing_app.figures.month_request import MonthRefusal, month_request
from billing_app.figures.months import FIRST_MONTH, Month, today_utc
from billing_app.figures.proration import NoPriceError
from billing_app.models import Organisation
from billing_app.stripe_gateway import StripeInvoice, StripeUnavailable, gateway

__all__ = [
    "FIRST_MONTH",
    "InvalidEmail",
    "Month",
    "MonthTotals",
    "NoPriceError",
    "StripeInvoice",
    "StripeUnavailable",
    "fetch_invoice",
    "month_totals",
    "normalise_address",
    "projected_cost",
    "queue",
    "queue_store",
    "tenants_csv",
    "today_utc",
]


def normalise_address(raw: str | None) -> str:
    """The address as the billing email's rules accept it, or InvalidEmail saying why."""
    return normalise(raw)


def projected_cost(organisation: Organisation, today: dt.date) -> tuple[Decimal, str] | None:
    """The current month's projected month-end cost and its currency (None without a price)."""
    try:
        headline = month_headline(organisation, Month.of(today), today)
    except NoPriceError:
        return None
    cost = headline.projected_cost if headline.projected_cost is not None else headline.cost
    return cost, headline.currency


def month_totals(organisation: Organisation, month: Month, today: dt.date) -> MonthTotals | None:
    """A month's figures per tenant (None when the month has no price or is before 2026)."""
    if month < FIRST_MONTH:
        return None
    try:
        return month_summary(organisation, month, today)
    except NoPriceError:
        return None


def tenants_csv(organisation: Organisation, month: Month, today: dt.date) -> tuple[str, bytes]:
    """The month's `tenants.csv` as the export names and writes it (`NoPriceError` for a month
    without a price)."""
    asked = month_request(organisation, str(month), today)
    if isinstance(asked, MonthRefusal):
        raise NoPriceError(asked.message)
    rows = exports_csv.month_tenant_rows(organisation, asked, today)
    body = "".join(exports_csv.chunks(exports_csv.TENANT_COLUMNS, rows))
    return exports_csv.filename(organisation, month, "tenants"), body.encode("utf-8")


def fetch_invoice(invoice_id: str) -> StripeInvoice | None:
    """The invoice as Stripe gives it now (its page and PDF links are fresh)."""
    return gateway().invoice(invoice_id)


def queue(app: Flask | None = None) -> Huey:
    """The job queue the worker runs (the reports' queue: one worker runs every job)."""
    from billing_app.reports.queue import jobs

    return jobs(app or current_app._get_current_object()).queue  # type: ignore[attr-defined]


def queue_store(app: Flask) -> Huey:
    """The queue's storage as the app's settings name it now, for a key and value only (no
    tasks): the same store the worker's queue reads."""
    url, name = app.config["QUEUE_URL"], app.config["QUEUE_NAME"]
    if url.startswith(QUEUE_SCHEMES):
        return RedisHuey(name, url=url, results=False)
    return SqliteHuey(name, filename=url.removeprefix("sqlite:///"), results=False)
