"""The Settings → Usage page: month picker, month summary with its chart (figures from
`service`); the report's download route (`reports.views`) is registered here as usage.report."""

from __future__ import annotations

from decimal import Decimal

from flask import (
    Blueprint,
    current_app,
    get_flashed_messages,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from markupsafe import Markup

from billing_app.access import can, htmx_target, is_htmx, requires
from billing_app.billing_email import service as billing_email
from billing_app.figures.cache import remembered
from billing_app.figures.months import today_utc
from billing_app.notifications import views as notifications_views
from billing_app.permissions import Action
from billing_app.reports import views as reports_views
from billing_app.reports.writer import CURRENCY_SYMBOLS
from billing_app.usage.service import MonthSummary, summary_of
from billing_app.usage.tenant_table import TenantTable, tenant_table

TABLE_ID = "tenant-table"
"""The tenant table's element: htmx requests that swap it get the table alone."""

bp = Blueprint("usage", __name__, url_prefix="/settings/usage")


@bp.get("")
@requires(Action.VIEW_USAGE)
def page():
    """The Usage page: billing section, month picker and the summary of the month asked for."""
    shown = summary_of(current_user.organisation, request.args.get("month"), today_utc())
    table, status = table_of(shown)
    return render_page(max(shown.status, status), summary=shown, table=table)


@bp.get("/summary")
@requires(Action.VIEW_USAGE)
def summary():
    """The month summary (or, for htmx swapping the tenant table, the table alone) with the
    page's address for htmx's history; the whole page without htmx."""
    shown = summary_of(current_user.organisation, request.args.get("month", ""), today_utc())
    table, table_status = table_of(shown)
    status = max(shown.status, table_status)
    if not is_htmx():
        return render_page(status, summary=shown, table=table)
    headers = {}
    if status == 200:
        params = table.query.params() if table else {}
        headers["HX-Push-Url"] = url_for("usage.page", month=str(shown.month), **params)
    if table is not None and htmx_target() == TABLE_ID:
        return render_template("_tenant_table.html", summary=shown, table=table), status, headers
    return month_html(shown, table), status, headers


# The report keeps its endpoint, usage.report, beside the page it is downloaded from.
bp.add_url_rule("/report", view_func=reports_views.report)


#: Flashed after a billing-email save without JavaScript; the page shows it where the billing
#: email is, as htmx does, not at the top with other messages.
EMAIL_NOTICE = "billing-email"


def render_page(status: int = 200, **context):
    """The whole Usage page; other routes pass extra context, e.g. the billing-email form."""
    flashed = get_flashed_messages(category_filter=[EMAIL_NOTICE])
    context.setdefault("email_notice", flashed[0] if flashed else None)
    context.setdefault("organisation", current_user.organisation)
    context.setdefault("email_history", billing_email.history(current_user.organisation_id))
    context.setdefault("notifications", notifications_views.for_usage_page())
    if "summary" not in context:
        context["summary"] = summary_of(current_user.organisation, None, today_utc())
    table = context.pop("table", None)
    context["month_html"] = month_html(context["summary"], table)
    return render_template("usage.html", **context), status


def table_of(summary: MonthSummary) -> tuple[TenantTable | None, int]:
    """The tenant table the request's `q`, `sort` and `page` ask for (None when the month
    has no figures), and its status (400 for a bad search, sort or page)."""
    if summary.usage is None:
        return None, 200
    return tenant_table(current_user.organisation, summary.usage, today_utc(), request.args)


def month_html(summary: MonthSummary, table: TenantTable | None = None) -> Markup:
    """The month summary fragment, with the tenant table (its first page by name unless
    `table` says otherwise). Each process keeps the HTML of that first page for the same
    figures, day and permissions (except while templates auto-reload, as in debug mode);
    searches, sorts and later pages are rendered afresh, 50 rows at most."""
    if table is None and summary.usage is not None:
        table, _ = tenant_table(current_user.organisation, summary.usage, today_utc(), {})

    def render() -> Markup:
        # The template's output, escaped by Jinja: safe to include as it is.
        html = render_template("_usage_month.html", summary=summary, table=table)
        return Markup(html)  # noqa: S704

    default = table is None or (table.query.is_default and table.problem is None)
    if summary.key is None or not default or current_app.jinja_env.auto_reload:
        return render()
    return remembered(("usage-month-html", *summary.key, can(Action.DOWNLOAD_REPORT)), render)


def format_money(amount: Decimal, currency: str, whole: bool = False) -> str:
    """An amount with its currency: "$1,234.56", "€1,234.56", "£1,234.56", "1,234.56 CHF";
    with `whole`, a whole amount without its cents ("$1,500", as on the chart's axis)."""
    exponent = amount.normalize().as_tuple().exponent
    places = max(2, -exponent) if isinstance(exponent, int) else 2
    if whole and amount == amount.to_integral_value():
        places = 0
    number = f"{abs(amount):,.{places}f}"
    sign = "-" if amount < 0 else ""
    symbol = CURRENCY_SYMBOLS.get(currency.lower())
    if symbol:
        return f"{sign}{symbol}{number}"
    return f"{sign}{number} {currency.upper()}"
