"""The billing email on the Usage page: shown to members, edited in place by admins."""

from __future__ import annotations

from flask import (
    Blueprint,
    flash,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from billing_app.access import can, is_htmx, requires
from billing_app.billing_email import saving
from billing_app.billing_email.forms import BillingEmailForm
from billing_app.billing_email.history import history
from billing_app.billing_email.saving import (
    SAVE_RATE_LIMIT,
    TOO_MANY_SAVES,
    Outcome,
    Result,
    Settled,
    settle_pending,
)
from billing_app.extensions import limiter
from billing_app.permissions import Action
from billing_app.stripe_gateway import gateway
from billing_app.web.page import render_page
from billing_app.web.responses import member_key

bp = Blueprint("billing_email", __name__, url_prefix="/settings/usage")

EMAIL_NOTICE = "billing-email"
"""The flash category of a billing-email save without JavaScript; the page shows it where
the billing email is, as htmx does, not at the top with other messages."""


@bp.get("/billing-email")
@requires(Action.VIEW_USAGE)
def show():
    """The billing-email display fragment; with `awaiting`, whether a change Stripe did not
    confirm in time has landed (204 to htmx while it has not)."""
    awaited = request.args.get("awaiting", "").strip()
    if not awaited or not can(Action.CHANGE_BILLING_EMAIL):
        return _display(focus=is_htmx())
    organisation_id = current_user.organisation_id
    landed = settle_pending(organisation_id, awaited, gateway()) is Settled.LANDED
    notice = f"Saved. Stripe now sends invoices to {awaited}." if landed else None
    if is_htmx():
        return _display(notice=notice, focus=True) if landed else ("", 204)
    flash(
        notice
        or f"Stripe has not confirmed {awaited} yet. Check again in a moment; saving again is "
        "safe.",
        EMAIL_NOTICE,
    )
    return redirect(url_for("usage.page"), code=303)


@bp.get("/billing-email/edit")
@requires(Action.CHANGE_BILLING_EMAIL)
def edit():
    """The inline edit form: a fragment for htmx, the page with the form in place otherwise."""
    return _edit_form(BillingEmailForm.opened(current_user.organisation.billing_email))


@bp.post("/billing-email")
@requires(Action.CHANGE_BILLING_EMAIL)
@limiter.limit(SAVE_RATE_LIMIT, key_func=member_key("billing-email"))
def save():
    """Save the billing email, Stripe first; the display again, or the form with the problem."""
    form = BillingEmailForm()
    if not form.validate_on_submit():
        return _edit_form(form, status=400)
    organisation_id = current_user.organisation_id
    result = saving.save(organisation_id, current_user, form.change(), gateway())
    if not result.ok:
        form.reopen(result)
        return _edit_form(form, result, status=result.status)
    if is_htmx():
        return _display(notice=result.message, focus=True)
    flash(result.message, EMAIL_NOTICE)
    return redirect(url_for("usage.page"), code=303)


@bp.errorhandler(429)
def too_many_saves(_error):
    """The admin saved too often in the last minute: the form again, with what was typed."""
    form = BillingEmailForm()
    current = current_user.organisation.billing_email
    result = Result(Outcome.TOO_MANY, current, 429, TOO_MANY_SAVES)
    return _edit_form(form, result, status=429)


def section_context() -> dict:
    """What the billing-email fragments show: the organisation and its recent changes."""
    organisation = current_user.organisation
    return {"organisation": organisation, "email_history": history(organisation.id)}


def page_section(context: dict) -> None:
    """The billing email's part of the Usage page (`web.page`): its recent changes, and the
    notice of a save without JavaScript, shown where the billing email is rather than at the
    top with other messages."""
    flashed = get_flashed_messages(category_filter=[EMAIL_NOTICE])
    context.setdefault("email_notice", flashed[0] if flashed else None)
    context["flash_shown_in_place"] = EMAIL_NOTICE
    context.setdefault("email_history", history(current_user.organisation_id))


def _display(notice: str | None = None, focus: bool = False):
    body = render_template(
        "_billing_email.html",
        **section_context(),
        email_notice=notice,
        email_focus=focus,
    )
    return body, 200


def _edit_form(form: BillingEmailForm, result: Result | None = None, status: int = 200):
    context = {"email_form": form, "email_result": result}
    if is_htmx():
        body = render_template("_billing_email_form.html", **section_context(), **context)
        return body, status
    return render_page(status, **context)
