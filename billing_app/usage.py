"""The Settings → Usage page."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user

from .permissions import Action, requires

bp = Blueprint("usage", __name__, url_prefix="/settings/usage")


@bp.get("")
@requires(Action.VIEW_USAGE)
def page():
    """The Usage page: billing section, month picker and month summary."""
    organisation = current_user.organisation
    return render_template("usage.html", organisation=organisation)


@bp.get("/billing-email")
@requires(Action.VIEW_USAGE)
def billing_email():
    """The billing-email display fragment."""
    return render_template("_billing_email.html", organisation=current_user.organisation)
