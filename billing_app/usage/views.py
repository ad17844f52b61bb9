"""The Settings → Usage page: month picker, month summary with its chart (figures from
`service`); the report's download route (`reports.views`) is registered here as usage.report."""

from __future__ import annotations

from decimal import Decimal

from flask import Blueprint, current_app, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup

from billing_app.access import can, is_htmx, requires
from billing_app.billing_email import service as billing_email
from billing_app.figures.cache import remembered
from billing_app.figures.months import today_utc
from billing_app.permissions import Action
from billing_app.reports import views as reports_views
from billing_app.reports.writer import CURRENCY_SYMBOLS
from billing_app.usage.service import MonthSummary, summary_of

bp = Blueprint("usage", __name__, url_prefix="/settings/usage")


@bp.get("")
@requires(Action.VIEW_USAGE)
def page():
    """The Usage page: billing section, month picker and the summary of the month asked for."""
    shown = summary_of(current_user.organisation, request.args.get("month"), today_utc())
    return render_page(shown.status, summary=shown)


@bp.get("/summary")
@requires(Action.VIEW_USAGE)
def summary():
    """The month summary: a fragment for htmx, which shows the page's address; else the page."""
    shown = summary_of(current_user.organisation, request.args.get("month", ""), today_utc())
    if not is_htmx():
        return render_page(shown.status, summary=shown)
    headers = {}
    if shown.status == 200:
        headers["HX-Push-Url"] = url_for("usage.page", month=str(shown.month))
    return month_html(shown), shown.status, headers


# The report keeps its endpoint, usage.report, beside the page it is downloaded from.
bp.add_url_rule("/report", view_func=reports_views.report)


def render_page(status: int = 200, **context):
    """The whole Usage page; other routes pass extra context, e.g. the billing-email form."""
    context.setdefault("organisation", current_user.organisation)
    context.setdefault("email_history", billing_email.history(current_user.organisation_id))
    if "summary" not in context:
        context["summary"] = summary_of(current_user.organisation, None, today_utc())
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
