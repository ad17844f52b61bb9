"""Sign-in and sign-out, and the site's front door."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload
from werkzeug.security import check_password_hash
from werkzeug.urls import iri_to_uri

from billing_app.access import is_htmx
from billing_app.auth.forms import LoginForm
from billing_app.extensions import db, limiter, login_manager
from billing_app.models import UNKNOWN_PASSWORD_HASH, Member

bp = Blueprint("auth", __name__)

login_manager.login_view = "auth.login"
login_manager.login_message = "Please sign in to continue."
login_manager.login_message_category = "info"

SENT_TO_SIGN_IN = "Sign in to see your organisation's usage."
"""What the login page says to a visitor it was sent to from a page that needs a member."""
SIGNED_OUT = "You have been signed out."


@login_manager.user_loader
def load_member(session_id: str) -> Member | None:
    """The member of a session id (`<member id>:<session version>`), if it is still current:
    a session from before sign-out, a password change or a role change signs no one in."""
    member_id, _, version = session_id.partition(":")
    if not all(part.isascii() and part.isdigit() for part in (member_id, version)):
        return None
    # With its organisation: every page shows it, and templates never query.
    member = db.session.get(Member, int(member_id), options=[joinedload(Member.organisation)])
    if member is None or member.session_version != int(version):
        return None
    return member


@login_manager.unauthorized_handler
def unauthorized():
    """Send anonymous visitors to the login page; tell htmx to do the same."""
    target = url_for("auth.login", next=_local_path(iri_to_uri(request.full_path)))
    if is_htmx():
        return "", 401, {"HX-Redirect": target}
    return redirect(target)


MAX_NEXT_LENGTH = 2000


def _local_path(candidate: str | None) -> str | None:
    """`candidate` if it is a plain path on this site, else None (never redirect off-site).

    Plain means printable ASCII without spaces or backslashes: browsers drop tabs and line
    breaks from addresses and read a backslash as a slash, so a tab between two slashes would
    leave the site, and line breaks cannot go into a Location header at all.
    """
    if not candidate or len(candidate) > MAX_NEXT_LENGTH:
        return None
    candidate = candidate.rstrip("?") if candidate.endswith("?") else candidate
    if not all("!" <= char <= "~" for char in candidate) or "\\" in candidate:
        return None
    parts = urlsplit(candidate)
    if parts.scheme or parts.netloc or not candidate.startswith("/"):
        return None
    if candidate.startswith("//"):
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
        if member is None:
            # As slow as a wrong password, so the time taken does not tell who is a member.
            check_password_hash(UNKNOWN_PASSWORD_HASH, form.password.data)
        elif member.check_password(form.password.data):
            # A new session: nothing of the anonymous one (its CSRF secret included) carries over.
            session.clear()
            login_user(member)
            return redirect(next_path or url_for("usage.page"), code=303)
        form.form_errors.append("Email or password is incorrect.")
        status = 401
    elif request.method == "POST":
        status = 400
    reason = SENT_TO_SIGN_IN if next_path else None
    return render_template("login.html", form=form, next=next_path, reason=reason), status


@bp.post("/logout")
@login_required
def logout():
    """Sign out, here and in every other session of the member."""
    current_user.end_sessions()
    db.session.commit()
    logout_user()
    session.clear()
    flash(SIGNED_OUT, "info")
    return redirect(url_for("auth.login"), code=303)


@bp.get("/")
def home():
    """The front door: the Usage page, which sends anonymous visitors on to sign in."""
    return redirect(url_for("usage.page"))
