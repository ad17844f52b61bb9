"""The Billing Portal: which way in a member takes, and where that way starts.

Direct access (billing members, and everyone allowed in a whitelisted organisation) gets a
fresh Stripe billing portal session; everyone else allowed gets Stripe's portal login page
with the billing email filled in, where Stripe emails a one-time login link.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from billing_app.extensions import db
from billing_app.logs import billing_log as log
from billing_app.models import AuditEvent, Member, Organisation
from billing_app.permissions import Role
from billing_app.stripe_gateway import (
    StripeGateway,
    StripeProblem,
    StripeRequestFailed,
    StripeUnavailable,
)

RATE_LIMIT = "10 per minute"
WHITELIST_AUDIT_ACTION = "portal_direct_access_changed"


class Flow(enum.StrEnum):
    DIRECT = "direct"
    MAGIC_LINK = "magic_link"


@dataclass
class PortalProblem(StripeProblem):
    """The portal cannot be opened: what happened, what to do, and the HTTP status to answer."""

    advice: str


SUPPORT = "If it keeps happening, contact Petra support."


def _stripe_problem(failure: StripeUnavailable, organisation: Organisation) -> PortalProblem:
    reason = failure.reason if isinstance(failure, StripeRequestFailed) else "error"
    problems = {
        "timeout": (
            504,
            "Stripe did not answer in time",
            "Stripe took too long to open the billing portal.",
            f"Nothing was changed. Try again in a minute. {SUPPORT}",
        ),
        "unreachable": (
            503,
            "Stripe cannot be reached",
            "Petra could not connect to Stripe to open the billing portal.",
            f"Nothing was changed. Try again in a few minutes. {SUPPORT}",
        ),
        "busy": (
            503,
            "Stripe is busy",
            "Stripe asked Petra to slow down and did not open the billing portal.",
            "Nothing was changed. Wait a minute, then try again.",
        ),
        "missing": (
            409,
            "Stripe account not found",
            f"The Stripe customer linked to {organisation.name} no longer exists at Stripe.",
            "Contact Petra support and ask them to link your organisation to Stripe again. "
            "Your usage and billing are not affected.",
        ),
        "refused": (
            502,
            "Stripe refused the request",
            "Stripe did not accept Petra's request to open the billing portal.",
            f"This needs fixing on our side. {SUPPORT}",
        ),
    }
    status, title, message, advice = problems.get(
        reason,
        (
            502,
            "Stripe had a problem",
            "Stripe answered with an error and did not open the billing portal.",
            f"Nothing was changed. Try again in a few minutes. {SUPPORT}",
        ),
    )
    return PortalProblem(status, reason, title, message, advice)


def _no_customer(organisation: Organisation) -> PortalProblem:
    return PortalProblem(
        409,
        "no_customer",
        "Billing Portal not set up yet",
        f"{organisation.name} is not linked to a Stripe customer yet, "
        "so there is no billing portal to open.",
        "Contact Petra support and ask them to link your organisation to Stripe. "
        "Your usage and billing are not affected.",
    )


def _no_login_page() -> PortalProblem:
    return PortalProblem(
        503,
        "no_login_page",
        "Billing Portal login not available",
        "The Stripe portal login page is not configured for Petra.",
        "This needs fixing on our side. Please contact Petra support.",
    )


RATE_LIMITED = PortalProblem(
    429,
    "rate_limited",
    "Too many portal openings",
    "You opened the Billing Portal many times in the last minute.",
    "Wait a minute, then try again.",
)


def flow_for(member: Member) -> Flow:
    """The way into the portal for a member who may open it."""
    if member.role == Role.BILLING or member.organisation.portal_direct_access:
        return Flow.DIRECT
    return Flow.MAGIC_LINK


def login_url(login_page: str, email: str) -> str:
    """The portal login page with `prefilled_email` set, keeping the page's own query."""
    parts = urlsplit(login_page)
    kept = [
        pair
        for pair in parts.query.split("&")
        if pair and pair.split("=", 1)[0] != "prefilled_email"
    ]
    kept.append("prefilled_email=" + quote(email, safe=""))
    return urlunsplit(parts._replace(query="&".join(kept)))


def _is_web_address(url: str | None) -> bool:
    if not url:
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def open_portal(
    member: Member, *, return_url: str, login_page: str | None, stripe: StripeGateway
) -> str:
    """The address that takes `member` into the portal; raises PortalProblem when there is none."""
    organisation = member.organisation
    flow = flow_for(member)
    try:
        if not organisation.stripe_customer_id:
            raise _no_customer(organisation)
        if flow is Flow.DIRECT:
            try:
                url = stripe.create_portal_session(organisation.stripe_customer_id, return_url)
            except StripeUnavailable as failure:
                raise _stripe_problem(failure, organisation) from failure
        else:
            if not _is_web_address(login_page):
                raise _no_login_page()
            url = login_url(login_page, organisation.billing_email)
    except PortalProblem as problem:
        log_failure(member, flow, problem.reason)
        raise
    fields = {"member_id": member.id, "organisation": organisation.slug, "flow": flow.value}
    log.info(
        "billing portal opened: member=%s organisation=%s flow=%s",
        *fields.values(),
        extra=fields,
    )
    return url


def log_failure(member: Member, flow: Flow, reason: str) -> None:
    """Log a portal opening that did not happen."""
    fields = {
        "member_id": member.id,
        "organisation": member.organisation.slug,
        "flow": flow.value,
        "reason": reason,
    }
    log.warning(
        "billing portal not opened: member=%s organisation=%s flow=%s reason=%s",
        *fields.values(),
        extra=fields,
    )


def set_direct_access(organisation: Organisation, enabled: bool) -> bool:
    """Put the organisation on the whitelist or take it off, with an audit event (staff).

    Returns False, writing nothing, when it already was that way. The caller commits.
    """
    if organisation.portal_direct_access == enabled:
        return False
    old = organisation.portal_direct_access
    organisation.portal_direct_access = enabled
    event = AuditEvent(
        organisation_id=organisation.id,
        action=WHITELIST_AUDIT_ACTION,
        source="staff",
        old_value=str(old).lower(),
        new_value=str(enabled).lower(),
    )
    db.session.add(event)
    return True
