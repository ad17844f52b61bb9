"""The tenant page: one tenant's month, its billable users and what changed since the month
before (figures from `service`)."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, abort, render_template, request
from flask_login import current_user
from markupsafe import Markup

from billing_app.access import is_htmx, requires
from billing_app.figures.months import Month, today_utc
from billing_app.figures.revisions import tenant_revision
from billing_app.models import Organisation
from billing_app.permissions import Action
from billing_app.tenants import service
from billing_app.web.fragments import kept

bp = Blueprint("tenants", __name__, url_prefix="/settings/usage/tenants")


@bp.get("/<tenant_id>")
@requires(Action.DOWNLOAD_REPORT)
def show(tenant_id: str):
    """The tenant's month: a fragment for htmx (the month picker), else the whole page."""
    organisation = current_user.organisation
    tenant = service.find(organisation.id, tenant_id)
    if tenant is None:
        if is_htmx():
            abort(404)
        return render_template("tenant_not_found.html", tenant_id=tenant_id), 404
    shown, html = month_of(organisation, tenant, today_utc())
    if is_htmx():
        return html, shown.status
    return render_template("tenant.html", shown=shown, month_html=html), shown.status


def month_of(
    organisation: Organisation, tenant: service.TenantFacts, today: dt.date
) -> tuple[service.TenantMonth, Markup]:
    """The tenant's month asked for and its fragment. Each process keeps the last ones it
    showed (`web.fragments`), keyed by everything they depend on: the tenant's usage revision
    up to the current month (`figures.revisions`: it covers every month the page can show,
    and a sync of other tenants leaves it as it is), the tenant, the month and page asked
    for, and the day; one that shows a problem is not kept."""
    month, page = request.args.get("month"), request.args.get("page")
    revision = tenant_revision(organisation.id, tenant.id, Month.of(today))
    key = ("tenant-month", organisation.id, revision, tenant, month, page, today)

    def render() -> tuple[service.TenantMonth, Markup]:
        shown = service.tenant_month(organisation, tenant, month, today, page)
        # The template's output, escaped by Jinja: safe to include as it is.
        return shown, Markup(render_template("_tenant_month.html", shown=shown))  # noqa: S704

    return kept(key, render, keep=lambda found: found[0].status == 200)
