"""The Billing Portal button's route: a 303 into Stripe, or a page saying why not."""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, url_for
from flask_login import current_user

from billing_app.access import requires
from billing_app.extensions import limiter
from billing_app.permissions import Action
from billing_app.portal import service as portal
from billing_app.stripe_gateway import gateway
from billing_app.web.responses import NO_STORE, member_key

bp = Blueprint("portal", __name__, url_prefix="/settings/usage")


def _problem_page(problem: portal.PortalProblem):
    return render_template("portal_error.html", problem=problem), problem.status, NO_STORE


@bp.post("/billing-portal")
@requires(Action.OPEN_BILLING_PORTAL)
@limiter.limit(portal.RATE_LIMIT, key_func=member_key("portal"))
def open_portal():
    """Send the member into the Stripe billing portal, or explain why that is not possible."""
    try:
        url = portal.open_portal(
            current_user,
            return_url=url_for("usage.page", _external=True),
            login_page=current_app.config.get("STRIPE_PORTAL_LOGIN_URL"),
            stripe=gateway(),
        )
    except portal.PortalProblem as problem:
        return _problem_page(problem)
    return redirect(url, code=303), NO_STORE


@bp.errorhandler(429)
def too_many_openings(_error):
    """The portal was opened too often by this member in the last minute."""
    if current_user.is_authenticated:
        portal.log_failure(current_user, portal.flow_for(current_user), "rate_limited")
    return _problem_page(portal.RATE_LIMITED)


def portal_flow() -> str:
    """The way into the portal the signed-in member will take: `direct` or `magic_link`."""
    return portal.flow_for(current_user)
