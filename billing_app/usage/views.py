"""The Settings → Usage page: month picker, month summary with its chart (figures from
`service`, the page put together by `web.usage_page`)."""

from __future__ import annotations

from flask import Blueprint, render_template, request, url_for
from flask_login import current_user

from billing_app.access import htmx_target, is_htmx, requires
from billing_app.figures.months import today_utc
from billing_app.permissions import Action
from billing_app.usage.service import MonthSummary, summary_of
from billing_app.usage.tenant_table import TenantTable, tenant_table
from billing_app.web.usage_page import month_html, render_page

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
