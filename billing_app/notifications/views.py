"""The billing contacts, statement and alerts section (`/settings/usage/notifications`), and
the two pages a mail's links open without signing in: confirm and unsubscribe."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from billing_app.access import can, is_htmx, requires
from billing_app.extensions import csrf, limiter
from billing_app.notifications import adapters, alerts, contacts, outbox, tasks
from billing_app.notifications import settings as alert_settings
from billing_app.permissions import Action

bp = Blueprint("notifications", __name__, url_prefix="/settings/usage/notifications")

NOTICE = "notifications"

RECENT_MESSAGES = 50


def section_context(**extra) -> dict:
    """What `_notifications.html` shows for the signed-in member's organisation."""
    organisation = current_user.organisation
    today = adapters.today_utc()
    saved = alert_settings.current(organisation.id)
    context = {
        "contacts": contacts.live_contacts(organisation.id),
        "max_contacts": contacts.MAX_CONTACTS,
        "alert_values": {
            "budget": "" if saved.budget is None else str(saved.budget),
            "growth_percent": saved.growth_percent or "",
            "growth_min_users": saved.growth_min_users or "",
        },
        "alert_errors": {},
        "billing_email_unsubscribed": saved.billing_email_unsubscribed,
        "alerts_sent": alerts.sent_this_month(organisation.id, today),
        "currency": alert_settings.currency(organisation.id),
        "outbox": outbox.recent(organisation.id, RECENT_MESSAGES),
        "contact_email": "",
        "contact_error": None,
        "notice": None,
    }
    context.update(extra)
    return context


def page_section(context: dict) -> None:
    """The section on the Usage page (`web.page`), for members who may manage contacts."""
    context.setdefault("notifications", section_context() if can(Action.MANAGE_CONTACTS) else None)


def _answer(status: int = 200, **extra):
    """The section for htmx, the whole page otherwise."""
    template = "_notifications.html" if is_htmx() else "notifications.html"
    return render_template(template, notifications=section_context(**extra)), status


def _done(message: str, queued_mail: bool = False):
    """After a change: the section for htmx, 303 to the page otherwise."""
    if queued_mail:
        tasks.kick()
    if is_htmx():
        return _answer(notice=message)
    flash(message, NOTICE)
    return redirect(url_for("notifications.page"), code=303)


@bp.get("")
@requires(Action.MANAGE_CONTACTS)
def page():
    """The section: a fragment for htmx, a page of its own otherwise."""
    return _answer()


def _member_key() -> str:
    return f"billing-contacts:{current_user.get_id()}"


@bp.post("/contacts")
@requires(Action.MANAGE_CONTACTS)
@limiter.limit(contacts.ADD_RATE_LIMIT, key_func=_member_key)
def add_contact():
    """Add a billing contact and mail it its confirmation link."""
    typed = request.form.get("email", "")
    result = contacts.add(current_user.organisation, current_user, typed)
    if not result.ok:
        return _answer(result.status, contact_email=typed, contact_error=result.message)
    return _done(result.message, queued_mail=True)


@bp.errorhandler(429)
def too_many_adds(_error):
    """Too many contacts added in the last minute: the form again, with what was typed."""
    typed = request.form.get("email", "")
    return _answer(429, contact_email=typed, contact_error=contacts.TOO_MANY_ADDS)


@bp.post("/contacts/<int:contact_id>/resend")
@requires(Action.MANAGE_CONTACTS)
@limiter.limit(contacts.ADD_RATE_LIMIT, key_func=_member_key)
def resend_link(contact_id: int):
    """Mail a waiting contact a new confirmation link."""
    result = contacts.resend(current_user.organisation, contact_id)
    if not result.ok:
        return _answer(result.status, notice=result.message)
    return _done(result.message, queued_mail=True)


@bp.post("/contacts/<int:contact_id>/remove")
@requires(Action.MANAGE_CONTACTS)
def remove_contact(contact_id: int):
    """Take a contact off the list."""
    result = contacts.remove(current_user.organisation, current_user, contact_id)
    if not result.ok:
        return _answer(result.status, notice=result.message)
    return _done(result.message)


@bp.post("/alerts")
@requires(Action.MANAGE_CONTACTS)
def save_alerts():
    """Save the budget and the growth threshold."""
    typed = {name: request.form.get(name, "") for name in alert_settings_fields()}
    try:
        wanted = alert_settings.parse(**typed)
    except alert_settings.InvalidSettings as problem:
        return _answer(400, alert_values=typed, alert_errors=problem.errors)
    alert_settings.save(current_user.organisation_id, current_user, wanted)
    tasks.check_alerts_soon(current_user.organisation_id)  # a lower budget may call for one
    return _done("The alert settings were saved.")


def alert_settings_fields() -> tuple[str, ...]:
    return ("budget", "growth_percent", "growth_min_users")


# --- Public by token: the links in the mail -------------------------------------------------


def _link_page(link: contacts.Link, contact_id: int, token: str, status: int = 200):
    return (
        render_template("notification_confirm.html", link=link, contact_id=contact_id, token=token),
        status,
    )


@bp.get("/confirm/<int:contact_id>/<token>")
def confirm(contact_id: int, token: str):
    """The confirmation link: a page whose one button confirms (opening it changes nothing)."""
    link = contacts.check_link(contact_id, token)
    status = 200 if link.state in (contacts.LinkState.VALID, contacts.LinkState.USED) else 410
    if link.state is contacts.LinkState.INVALID:
        status = 404
    return _link_page(link, contact_id, token, status)


@bp.post("/confirm/<int:contact_id>/<token>")
def confirm_post(contact_id: int, token: str):
    """Confirm the contact with its link."""
    link = contacts.confirm(contact_id, token)
    status = {
        contacts.LinkState.CONFIRMED: 200,
        contacts.LinkState.USED: 409,
        contacts.LinkState.EXPIRED: 410,
    }.get(link.state, 404)
    return _link_page(link, contact_id, token, status)


@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
@csrf.exempt
def unsubscribe(token: str):
    """One-click unsubscribe (RFC 8058): a POST of `List-Unsubscribe=One-Click` needs no cookie
    or CSRF token; a GET shows a page with the button."""
    if request.method == "GET":
        described = contacts.describe_unsubscribe(token)
        return (
            render_template(
                "notification_unsubscribe.html", result=described, token=token, done=False
            ),
            200 if described.ok else 404,
        )
    result = contacts.unsubscribe(token)
    return (
        render_template("notification_unsubscribe.html", result=result, token=token, done=True),
        200 if result.ok else 404,
    )


def init_app(app) -> None:
    """Register the section's routes and the `flask worker` alias."""
    from billing_app.notifications import commands
    from billing_app.reports.queue import add_tasks

    app.register_blueprint(bp)
    add_tasks(app, tasks.register)
    commands.init_app(app)
