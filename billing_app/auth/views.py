"""Sign-in and sign-out."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import func, select

from billing_app.access import is_htmx
from billing_app.auth.forms import LoginForm
from billing_app.extensions import db, limiter, login_manager
from billing_app.models import Member

bp = Blueprint("auth", __name__)

login_manager.login_view = "auth.login"
login_manager.login_message = "Please sign in to continue."
login_manager.login_message_category = "info"


@login_manager.user_loader
def load_member(member_id: str) -> Member | None:
    return db.session.get(Member, int(member_id)) if member_id.isdigit() else None


@login_manager.unauthorized_handler
def unauthorized():
    """Send anonymous visitors to the login page; tell htmx to do the same."""
    target = url_for("auth.login", next=_local_path(request.full_path))
    if is_htmx():
        return "", 401, {"HX-Redirect": target}
    return redirect(target)


def _local_path(candidate: str | None) -> str | None:
    """`candidate` if it is a path on this site, else None (never redirect off-site)."""
    if not candidate:
        return None
    candidate = candidate.rstrip("?") if candidate.endswith("?") else candidate
    parts = urlsplit(candidate)
    if parts.scheme or parts.netloc or not candidate.startswith("/"):
        return None
    if candidate.startswith(("//", "/\\")) or "\\" in candidate:
        return None
    return candidate


def _login_key() -> str:
    return f"{request.remote_addr}:{(request.form.get('email') or '').strip().lower()}"


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("10 per minute", methods=["POST"], key_func=_login_key)
def login():
    """Sign in with email and password."""
    next_path = _local_path(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(next_path or url_for("usage.page"))
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        member = db.session.scalar(
            select(Member).where(func.lower(Member.email) == form.email.data.strip().lower())
        )
        if member is not None and member.check_password(form.password.data):
            login_user(member)
            return redirect(next_path or url_for("usage.page"), code=303)
        form.form_errors.append("Email or password is incorrect.")
        status = 401
    elif request.method == "POST":
        status = 400
    return render_template("login.html", form=form, next=next_path), status


@bp.post("/logout")
@login_required
def logout():
    """Sign out."""
    logout_user()
    return redirect(url_for("auth.login"), code=303)
