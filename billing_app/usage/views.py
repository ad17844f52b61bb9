"""The Settings → Usage page: month picker, month summary with its chart (figures from
`service`), and the month's part of the page that `web.page` puts together."""

from __future__ import annotations

from flask import Blueprint, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup

from billing_app.access import can, htmx_target, is_htmx, requires
from billing_app.figures.months import Month, today_utc
from billing_app.permissions import Action
from billing_app.usage.service import MonthSummary, summary_of
from billing_app.usage.tenant_table import TenantRow, TenantTable, tenant_table
from billing_app.web.fragments import kept
from billing_app.web.page import render_page, rendered

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


def table_of(summary: MonthSummary) -> tuple[TenantTable | None, int]:
    """The tenant table the request's `q`, `sort` and `page` ask for (None when the month
    has no figures), and its status (400 for a bad search, sort or page)."""
    if summary.usage is None:
        return None, 200
    return tenant_table(current_user.organisation, summary.usage, today_utc(), request.args)


def page_section(context: dict) -> None:
    """The Usage page's month (`web.page`): the one the view chose, else the current month,
    with its tenant table."""
    if "summary" not in context:
        context["summary"] = summary_of(current_user.organisation, None, today_utc())
    context["month_html"] = month_html(context["summary"], context.pop("table", None))


def month_html(summary: MonthSummary, table: TenantTable | None = None) -> Markup:
    """The month summary fragment, with the tenant table (its first page by name unless
    `table` says otherwise). Each process keeps the HTML of that first page for the same
    figures, day and permissions (`web.fragments`); searches, sorts and later pages are
    rendered afresh around kept rows, 50 at most."""
    if table is None and summary.usage is not None:
        table, _ = tenant_table(current_user.organisation, summary.usage, today_utc(), {})

    def render() -> Markup:
        return rendered("_usage_month.html", summary=summary, table=table)

    default = table is None or (table.query.is_default and table.problem is None)
    if summary.key is None or not default:
        return render()
    return kept(("usage-month-html", *summary.key, can(Action.DOWNLOAD_REPORT)), render)


def tenant_row(row: TenantRow, month: Month, currency: str) -> Markup:
    """One row of the tenant table, kept for the same figures, month and permissions: a
    sync renders again only the rows of the tenants it changed (the table's template calls
    this for each row, as the template global `tenant_row`)."""

    def render() -> Markup:
        return rendered("_tenant_row.html", row=row, month=str(month), currency=currency)

    key = ("tenant-row", row, month, currency, can(Action.DOWNLOAD_REPORT))
    return kept(key, render, store="rows")
