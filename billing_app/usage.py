"""The Settings → Usage page: month picker, month summary with its chart, and the report."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from flask import Blueprint, current_app, redirect, render_template, request, send_file, url_for
from flask_login import current_user
from markupsafe import Markup

from .errors import render_error
from .models import Organisation
from .months import Month, MonthNotAvailable, available_months, parse_requested_month, today_utc
from .permissions import Action, can, is_htmx, requires
from .proration import MonthTotals, NoPriceError
from .report import CURRENCY_SYMBOLS, report_filename
from .reports.jobs import ReportStatus, has_price, request_report
from .usage_summary import chart_totals, month_summary, remembered

bp = Blueprint("usage", __name__, url_prefix="/settings/usage")
log = logging.getLogger("billing_app.billing")

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
VARY = {"Vary": "HX-Request"}


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
    headers = dict(VARY)
    if shown.status == 200:
        headers["HX-Push-Url"] = url_for("usage.page", month=str(shown.month))
    return month_html(shown), shown.status, headers


@bp.get("/report")
@requires(Action.DOWNLOAD_REPORT)
def report():
    """The month's itemized report as an .xlsx attachment once built; 202 with its progress
    while it is being built (htmx: the Download control, else a page that refreshes)."""
    organisation = current_user.organisation
    today = today_utc()
    try:
        month = parse_requested_month(request.args.get("month"), today)
    except MonthNotAvailable as bad:
        return render_error(400, str(bad), title="No report for that month")
    if not has_price(organisation, month):
        return render_error(409, no_price(month), title="No price for that month")
    retry = request.args.get("retry") == "1"
    status = request_report(organisation, month, today, retry=retry)
    if retry and not is_htmx():
        # The progress page refreshes itself: from the address that does not ask to retry.
        return redirect(url_for("usage.report", month=str(month)), 303)
    if status.ready and not is_htmx():
        return report_file(status, organisation, month)
    return report_progress(status, month)


def report_file(status: ReportStatus, organisation: Organisation, month: Month):
    """The kept report, sent as an attachment."""
    response = send_file(
        status.file,
        mimetype=XLSX,
        as_attachment=True,
        download_name=report_filename(organisation, month),
        etag=False,
    )
    response.cache_control.no_store = True
    log_download(organisation, month)
    return response


def report_progress(status: ReportStatus, month: Month):
    """Where the report stands: for htmx the Download control (which, once the report is
    ready, starts the download), else the page that refreshes until it arrives."""
    if status.file is not None:
        status.file.close()
    code = {"ready": 200, "failed": 500}.get(status.state, 202)
    context = {"status": status, "report_month": month}
    if is_htmx():
        return render_template("_report_download.html", **context), code, VARY
    return render_template("report_progress.html", **context), code, VARY


def render_page(status: int = 200, **context):
    """The whole Usage page; other routes pass extra context, e.g. the billing-email form."""
    context.setdefault("organisation", current_user.organisation)
    if "summary" not in context:
        context["summary"] = summary_of(None)
    context["month_html"] = month_html(context["summary"])
    return render_template("usage.html", **context), status, VARY


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


def log_download(organisation: Organisation, month: Month) -> None:
    fields = {"member_id": current_user.id, "organisation": organisation.slug, "month": str(month)}
    log.info(
        "usage report downloaded: member=%s organisation=%s month=%s",
        *fields.values(),
        extra=fields,
    )


@bp.app_template_filter("money")
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
