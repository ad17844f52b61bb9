"""The tenant page, `/settings/usage/tenants/<tenant_id>?month=YYYY-MM`: for now the tenant's
name, Microsoft tenant id and its figures of the month, as the tenant table shows them."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request
from flask_login import current_user
from sqlalchemy import select

from billing_app.access import requires
from billing_app.extensions import db
from billing_app.figures.months import today_utc
from billing_app.models import Tenant
from billing_app.permissions import Action
from billing_app.usage.service import summary_of

bp = Blueprint("tenants", __name__, url_prefix="/settings/usage/tenants")


@bp.get("/<tenant_id>")
@requires(Action.DOWNLOAD_REPORT)
def show(tenant_id: str):
    """One tenant of the member's organisation in the month asked for; 404 for any other."""
    tenant = db.session.scalar(
        select(Tenant).where(
            Tenant.organisation_id == current_user.organisation_id,
            Tenant.external_id == tenant_id,
        )
    )
    if tenant is None:
        abort(404, "There is no tenant with this id in your organisation.")
    shown = summary_of(current_user.organisation, request.args.get("month"), today_utc())
    figures = None
    if shown.usage is not None:
        figures = next((t for t in shown.usage.tenants if t.tenant_id == tenant.id), None)
    return render_template("tenant.html", tenant=tenant, summary=shown, figures=figures), (
        shown.status
    )
