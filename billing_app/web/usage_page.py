"""The Usage page's assembly: the billing section, the month picker and the month summary
with its tenant table, rendered whole. The Usage page's views and the billing-email views
(for a browser without JavaScript, which gets the page with the form in place) both render
it from here; nothing here imports a view."""

from __future__ import annotations

from flask import get_flashed_messages, render_template
from flask_login import current_user
from markupsafe import Markup

from billing_app.access import can
from billing_app.billing_email.history import history
from billing_app.figures.months import Month, today_utc
from billing_app.permissions import Action
from billing_app.usage.service import MonthSummary, summary_of
from billing_app.usage.tenant_table import TenantRow, TenantTable, tenant_table
from billing_app.web.fragments import kept
from billing_app.web.notifications import for_usage_page as notifications_section

EMAIL_NOTICE = "billing-email"
"""The flash category of a billing-email save without JavaScript; the page shows it where
the billing email is, as htmx does, not at the top with other messages."""


def render_page(status: int = 200, **context):
    """The whole Usage page; other routes pass extra context, e.g. the billing-email form."""
    flashed = get_flashed_messages(category_filter=[EMAIL_NOTICE])
    context.setdefault("email_notice", flashed[0] if flashed else None)
    context["flash_shown_in_place"] = EMAIL_NOTICE
    context.setdefault("organisation", current_user.organisation)
    context.setdefault("email_history", history(current_user.organisation_id))
    context.setdefault("notifications", notifications_section())
    if "summary" not in context:
        context["summary"] = summary_of(current_user.organisation, None, today_utc())
    table = context.pop("table", None)
    context["month_html"] = month_html(context["summary"], table)
    return render_template("usage.html", **context), status


def month_html(summary: MonthSummary, table: TenantTable | None = None) -> Markup:
    """The month summary fragment, with the tenant table (its first page by name unless
    `table` says otherwise). Each process keeps the HTML of that first page for the same
    figures, day and permissions (`web.fragments`); searches, sorts and later pages are
    rendered afresh, 50 rows at most."""
    if table is None and summary.usage is not None:
        table, _ = tenant_table(current_user.organisation, summary.usage, today_utc(), {})

    def render() -> Markup:
        return _rendered("_usage_month.html", summary=summary, table=table)

    default = table is None or (table.query.is_default and table.problem is None)
    if summary.key is None or not default:
        return render()
    return kept(("usage-month-html", *summary.key, can(Action.DOWNLOAD_REPORT)), render)


def tenant_row(row: TenantRow, month: Month, currency: str) -> Markup:
    """One row of the tenant table, kept for the same figures, month and permissions: a
    sync renders again only the rows of the tenants it changed (the table's template calls
    this for each row)."""

    def render() -> Markup:
        return _rendered("_tenant_row.html", row=row, month=str(month), currency=currency)

    key = ("tenant-row", row, month, currency, can(Action.DOWNLOAD_REPORT))
    return kept(key, render, store="rows")


def _rendered(template: str, **context) -> Markup:
    """A fragment's HTML, to include as it is (Jinja escaped what it wrote)."""
    return Markup(render_template(template, **context))  # noqa: S704
