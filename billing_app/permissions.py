"""The permission matrix: who may do what on the Usage page, in plain Python. Views and templates
ask it through `access`."""

from __future__ import annotations

import enum


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
    MANAGE_CONTACTS = "manage_contacts"
    MANAGE_API_TOKENS = "manage_api_tokens"


MATRIX: dict[Action, frozenset[Role]] = {
    Action.VIEW_USAGE: frozenset({Role.ADMIN, Role.FULL_MEMBER, Role.BILLING}),
    Action.CHANGE_BILLING_EMAIL: frozenset({Role.ADMIN}),
    Action.OPEN_BILLING_PORTAL: frozenset({Role.ADMIN, Role.BILLING}),
    Action.DOWNLOAD_REPORT: frozenset({Role.ADMIN, Role.FULL_MEMBER, Role.BILLING}),
    Action.SEE_INVOICES: frozenset({Role.ADMIN, Role.BILLING}),
    Action.MANAGE_CONTACTS: frozenset({Role.ADMIN, Role.BILLING}),
    Action.MANAGE_API_TOKENS: frozenset({Role.ADMIN}),
}


def role_may(role: Role | str, action: Action | str) -> bool:
    """Whether a member with this role may take this action."""
    return Role(role) in MATRIX[Action(action)]
