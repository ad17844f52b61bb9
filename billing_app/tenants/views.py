"""The tenant page: one tenant's month, its billable users and what changed since the month
before (figures from `service`)."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, abort, current_app, render_template, request
from flask_login import current_user
from markupsafe import Markup

from billing_app.access import is_htmx, requires
from billing_app.figures.cache import Memo
from billing_app.figures.months import today_utc
from billing_app.models import Organisation
from billing_app.permissions import Action
from billing_app.tenants import service

bp = Blueprint("tenants", __name__, url_prefix="/settings/usage/tenants")

KEPT = 32
"""Tenant months each process keeps rendered (see `month_of`)."""


@bp.get("/<tenant_id>")
@requires(Action.DOWNLOAD_REPORT)
def show(tenant_id: str):
    """The tenant's month: a fragment for htmx (the month picker), else the whole page."""
    organisation = current_user.organisation
    tenant = service.find(organisation.id, tenant_id)
    if tenant is None:
        abort(404)
    shown, html = month_of(organisation, tenant, today_utc())
    if is_htmx():
        return html, shown.status
    return render_template("tenant.html", shown=shown, month_html=html), shown.status


def month_of(
    organisation: Organisation, tenant: service.TenantFacts, today: dt.date
) -> tuple[service.TenantMonth, Markup]:
    """The tenant's month asked for and its fragment. Each process keeps the last ones it
    showed, keyed by everything they depend on: the organisation's usage revision (bumped by
    every import that changes usage data), the tenant, the month and page asked for, and the
    day (except while templates auto-reload, as in debug mode)."""
    month, page = request.args.get("month"), request.args.get("page")
    key = (organisation.id, organisation.usage_revision, tenant, month, page, today)
    memo = current_app.extensions.setdefault("tenant_month_memo", Memo(KEPT))
    kept = None if current_app.jinja_env.auto_reload else memo.get(key)
    if kept is None:
        shown = service.tenant_month(organisation, tenant, month, today, page)
        # The template's output, escaped by Jinja: safe to include as it is.
        kept = shown, Markup(render_template("_tenant_month.html", shown=shown))  # noqa: S704
        if shown.status == 200:
            memo.put(key, kept)
    return kept
