"""The permission matrix: who may do what on the Usage page. Views and templates both ask it."""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from typing import Any

from flask import abort, request
from flask_login import current_user

from .extensions import login_manager


class Role(enum.StrEnum):
    ADMIN = "admin"
    FULL_MEMBER = "full_member"
    BILLING = "billing"
    EXTERNAL_GUEST = "external_guest"


class Action(enum.StrEnum):
    VIEW_USAGE = "view_usage"
    CHANGE_BILLING_EMAIL = "change_billing_email"
    OPEN_BILLING_PORTAL = "open_billing_portal"
    DOWNLOAD_REPORT = "download_report"
    SEE_INVOICES = "see_invoices"


MATRIX: dict[Action, frozenset[Role]] = {
    Action.VIEW_USAGE: frozenset({Role.ADMIN, Role.FULL_MEMBER, Role.BILLING}),
    Action.CHANGE_BILLING_EMAIL: frozenset({Role.ADMIN}),
    Action.OPEN_BILLING_PORTAL: frozenset({Role.ADMIN, Role.BILLING}),
    Action.DOWNLOAD_REPORT: frozenset({Role.ADMIN, Role.FULL_MEMBER, Role.BILLING}),
    Action.SEE_INVOICES: frozenset({Role.ADMIN, Role.BILLING}),
}


def role_may(role: Role | str, action: Action | str) -> bool:
    """Whether a member with this role may take this action."""
    return Role(role) in MATRIX[Action(action)]


def can(action: Action | str) -> bool:
    """Whether the signed-in member may take this action (False for anonymous visitors)."""
    if not current_user.is_authenticated:
        return False
    return role_may(current_user.role, action)


def requires(action: Action) -> Callable:
    """Refuse the view unless the signed-in member may take `action`.

    Anonymous visitors go to the login page (htmx requests are told with a 401
    and an `HX-Redirect`); members without the permission get 403.
    """

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not role_may(current_user.role, action):
                abort(403)
            return view(*args, **kwargs)

        wrapped.required_action = action  # type: ignore[attr-defined]
        return wrapped

    return decorator


def is_htmx() -> bool:
    """Whether the current request was sent by htmx."""
    return request.headers.get("HX-Request") == "true"
