"""The Settings → Usage page: month picker, month summary with its chart, and the report."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from typing import BinaryIO

from flask import Blueprint, current_app, render_template, request, send_file, url_for
from flask_login import current_user
from markupsafe import Markup

from billing_app.access import can, is_htmx, requires
from billing_app.billing_email import service as billing_email
from billing_app.errors import render_error
from billing_app.figures.cache import chart_totals, month_summary, remembered
from billing_app.figures.calculator import MonthTotals, MonthUsage, month_usage
from billing_app.figures.months import (
    Month,
    MonthNotAvailable,
    available_months,
    parse_requested_month,
    today_utc,
)
from billing_app.figures.proration import NoPriceError
from billing_app.logs import billing_log as log
from billing_app.models import Organisation
from billing_app.permissions import Action
from billing_app.reports.writer import CURRENCY_SYMBOLS, report_filename, write_report

bp = Blueprint("usage", __name__, url_prefix="/settings/usage")

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True, slots=True)
class Bar:
    """One month of the monthly-totals chart."""

    month: Month
    total: Decimal
    share: Decimal
    """The total as a share of the highest month's, from 0 to 1."""


@dataclass(frozen=True, slots=True)
class MonthSummary:
    """What the month summary shows: the chosen month's usage, or why it cannot be shown."""

    months: list[Month]
    month: Month
    usage: MonthTotals | None = None
    bars: tuple[Bar, ...] = ()
    problem: str | None = None
    status: int = 200
    key: tuple | None = None
    """What the figures depend on (organisation, its usage revision, month, today), for
    keeping the rendered summary; None for a summary that shows a problem."""

    @property
    def current(self) -> Month:
        return self.months[0]


@bp.get("")
@requires(Action.VIEW_USAGE)
def page():
    """The Usage page: billing section, month picker and the summary of the month asked for."""
    shown = summary_of(request.args.get("month"))
    return render_page(shown.status, summary=shown)


@bp.get("/summary")
@requires(Action.VIEW_USAGE)
def summary():
    """The month summary: a fragment for htmx, which shows the page's address; else the page."""
    shown = summary_of(request.args.get("month", ""))
    if not is_htmx():
        return render_page(shown.status, summary=shown)
    headers = {}
    if shown.status == 200:
        headers["HX-Push-Url"] = url_for("usage.page", month=str(shown.month))
    return month_html(shown), shown.status, headers


@bp.get("/report")
@requires(Action.DOWNLOAD_REPORT)
def report():
    """The itemized report of the month asked for, as an .xlsx attachment."""
    organisation = current_user.organisation
    today = today_utc()
    try:
        month = parse_requested_month(request.args.get("month"), today)
        usage = month_usage(organisation, month, today)
    except MonthNotAvailable as bad:
        return render_error(400, str(bad), title="No report for that month")
    except NoPriceError:
        return render_error(409, no_price(month), title="No price for that month")
    response = send_file(
        written_report(usage, organisation),
        mimetype=XLSX,
        as_attachment=True,
        download_name=report_filename(organisation, month),
        etag=False,
    )
    response.cache_control.no_store = True
    log_download(organisation, month)
    return response


def render_page(status: int = 200, **context):
    """The whole Usage page; other routes pass extra context, e.g. the billing-email form."""
    context.setdefault("organisation", current_user.organisation)
    context.setdefault("email_history", billing_email.history(current_user.organisation_id))
    if "summary" not in context:
        context["summary"] = summary_of(None)
    context["month_html"] = month_html(context["summary"])
    return render_template("usage.html", **context), status


def month_html(summary: MonthSummary) -> Markup:
    """The month summary fragment. With a thousand tenants it takes longer to render than
    the rest of the request, so each process keeps the HTML for the same figures, day and
    permissions (except while templates auto-reload, as in debug mode)."""

    def render() -> Markup:
        # The template's output, escaped by Jinja: safe to include as it is.
        return Markup(render_template("_usage_month.html", summary=summary))  # noqa: S704

    if summary.key is None or current_app.jinja_env.auto_reload:
        return render()
    return remembered(("usage-month-html", *summary.key, can(Action.DOWNLOAD_REPORT)), render)


def summary_of(value: str | None) -> MonthSummary:
    """The summary of the month asked for as `YYYY-MM` (None: the current month)."""
    organisation = current_user.organisation
    today = today_utc()
    months = available_months(today)
    try:
        month = months[0] if value is None else parse_requested_month(value, today)
    except MonthNotAvailable as bad:
        return MonthSummary(months, months[0], problem=str(bad), status=400)
    try:
        usage = month_summary(organisation, month, today)
    except NoPriceError:
        return MonthSummary(months, month, problem=no_price(month))
    bars = chart_bars(chart_totals(organisation, today))
    key = (organisation.id, organisation.usage_revision, str(month), today.isoformat())
    return MonthSummary(months, month, usage, bars, key=key)


def no_price(month: Month) -> str:
    return (
        f"There is no unit price for {month.label} in your organisation's price list, so its "
        "usage cannot be priced yet. Contact Petra support to have the price added."
    )


def chart_bars(totals: list[tuple[Month, Decimal]]) -> tuple[Bar, ...]:
    """The chart's bars, scaled to the highest total; none when every month is zero."""
    top = max((total for _, total in totals), default=Decimal(0))
    if not top:
        return ()
    return tuple(Bar(month, total, total / top) for month, total in totals)


def written_report(usage: MonthUsage, organisation: Organisation) -> BinaryIO:
    """The report written to a temporary file in `REPORT_TMPDIR` and opened for reading. The
    file is unlinked at once: it goes away when the response closes it."""
    tmpdir = current_app.config.get("REPORT_TMPDIR") or tempfile.gettempdir()
    descriptor, path = tempfile.mkstemp(prefix="usage-", suffix=".xlsx", dir=tmpdir)
    os.close(descriptor)
    try:
        write_report(usage, organisation, dt.datetime.now(dt.UTC), path, tmpdir=tmpdir)
        return open(path, "rb")
    finally:
        os.unlink(path)


def log_download(organisation: Organisation, month: Month) -> None:
    fields = {"member_id": current_user.id, "organisation": organisation.slug, "month": str(month)}
    log.info(
        "usage report downloaded: member=%s organisation=%s month=%s",
        *fields.values(),
        extra=fields,
    )


def format_money(amount: Decimal, currency: str) -> str:
    """An amount with its currency: "$1,234.56", "€1,234.56", "£1,234.56", "1,234.56 CHF"."""
    exponent = amount.normalize().as_tuple().exponent
    places = max(2, -exponent) if isinstance(exponent, int) else 2
    number = f"{abs(amount):,.{places}f}"
    sign = "-" if amount < 0 else ""
    symbol = CURRENCY_SYMBOLS.get(currency.lower())
    if symbol:
        return f"{sign}{symbol}{number}"
    return f"{sign}{number} {currency.upper()}"
