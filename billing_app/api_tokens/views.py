"""The API tokens section of Settings → Usage (admins): list, create, revoke. A fragment for
htmx, a page of its own otherwise; every form works as a plain POST."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, url_for
from flask_login import current_user

from billing_app.access import is_htmx, requires
from billing_app.api_tokens import service
from billing_app.api_tokens.forms import RevokeForm, TokenForm
from billing_app.permissions import Action

bp = Blueprint("api_tokens", __name__, url_prefix="/settings/usage/api-tokens")


def _render(form: TokenForm | None = None, created: service.Created | None = None, status=200):
    """The section (htmx) or the page, with the list, the form and a token just created."""
    context = {
        "tokens": service.tokens(current_user.organisation_id),
        "token_form": form or TokenForm(formdata=None),
        "created": created,
        "revoke_form": RevokeForm(),
    }
    template = "_api_tokens.html" if is_htmx() else "api_tokens.html"
    return render_template(template, **context), status


@bp.get("")
@requires(Action.MANAGE_API_TOKENS)
def section():
    """The organisation's API tokens: a fragment for htmx, else a page of its own."""
    return _render()


@bp.post("")
@requires(Action.MANAGE_API_TOKENS)
def create():
    """Create a token and show its secret this once (400 with the form as typed when bad)."""
    form = TokenForm()
    if not form.validate():
        return _render(form, status=400)
    created = service.create(
        current_user.organisation_id,
        current_user,
        form.name.data,
        form.scopes.data,
        form.expiry_days,
    )
    return _render(TokenForm(formdata=None), created, status=201)


@bp.post("/<int:token_id>/revoke")
@requires(Action.MANAGE_API_TOKENS)
def revoke(token_id: int):
    """Revoke one token: the section again for htmx, else 303 back to the page."""
    form = RevokeForm()
    if not form.validate():
        abort(400)
    if service.revoke(current_user.organisation_id, current_user, token_id) is None:
        abort(404, "Your organisation has no such API token.")
    if is_htmx():
        return _render()
    return redirect(url_for("api_tokens.section"), code=303)
