"""The tenant page: one tenant's month, its billable users and what changed since the month
before (figures from `service`)."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request
from flask_login import current_user

from billing_app.access import is_htmx, requires
from billing_app.figures.months import today_utc
from billing_app.permissions import Action
from billing_app.tenants import service

bp = Blueprint("tenants", __name__, url_prefix="/settings/usage/tenants")


@bp.get("/<tenant_id>")
@requires(Action.DOWNLOAD_REPORT)
def show(tenant_id: str):
    """The tenant's month: a fragment for htmx (the month picker), else the whole page."""
    organisation = current_user.organisation
    tenant = service.find(organisation.id, tenant_id)
    if tenant is None:
        abort(404)
    shown = service.tenant_month(
        organisation, tenant, request.args.get("month"), today_utc(), request.args.get("page")
    )
    template = "_tenant_month.html" if is_htmx() else "tenant.html"
    return render_template(template, shown=shown), shown.status
