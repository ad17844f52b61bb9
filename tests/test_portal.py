"""The Billing Portal button: direct sessions, magic-link login, failures, limits, whitelist."""

from __future__ import annotations

import logging
import re
import socket
import urllib.request
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from billing_app import stripe_gateway
from billing_app.extensions import db
from billing_app.models import AuditEvent, Member, Organisation
from billing_app.portal import service as portal
from billing_app.stripe_gateway import StripeRequestFailed, gateway
from tests.factories import CSRF_INPUT, Auth, update_organisation

pytestmark = pytest.mark.stripe_customer

PORTAL = "/settings/usage/billing-portal"
RETURN_URL = "http://localhost/settings/usage"
SESSIONS = "/v1/billing_portal"


@pytest.fixture
def stripe_log(stripe_server):
    """The local Stripe server's request log, emptied for this test."""
    stripe_server.clear_requests()
    return stripe_server


def _customer_id(app) -> str:
    with app.app_context():
        return db.session.scalar(select(Organisation.stripe_customer_id))


def _session_requests(stripe_server) -> list[dict]:
    return [r for r in stripe_server.requests(SESSIONS) if r["method"] == "POST"]


def _expected_login_url(stripe_server, encoded_email: str) -> str:
    return f"{stripe_server.portal_login_url}?prefilled_email={encoded_email}"


# The flow, decided in the domain module.


@pytest.mark.parametrize(
    ("role", "whitelisted", "flow"),
    [
        ("admin", False, portal.Flow.MAGIC_LINK),
        ("admin", True, portal.Flow.DIRECT),
        ("billing", False, portal.Flow.DIRECT),
        ("billing", True, portal.Flow.DIRECT),
    ],
)
def test_flow_for_each_allowed_role_and_whitelist_state(role, whitelisted, flow):
    member = Member(role=role, organisation=Organisation(portal_direct_access=whitelisted))
    assert portal.flow_for(member) is flow


@pytest.mark.parametrize(
    ("login_page", "email", "expected"),
    [
        (
            "https://billing.stripe.com/p/login/abc",
            "billing+eu@x.example",
            "https://billing.stripe.com/p/login/abc?prefilled_email=billing%2Beu%40x.example",
        ),
        (
            "https://billing.stripe.com/p/login/abc?locale=fr&utm=a%20b",
            "billing@x.example",
            "https://billing.stripe.com/p/login/abc?locale=fr&utm=a%20b"
            "&prefilled_email=billing%40x.example",
        ),
        (
            "https://billing.stripe.com/p/login/abc?prefilled_email=old%40x.example&locale=de",
            "new@x.example",
            "https://billing.stripe.com/p/login/abc?locale=de&prefilled_email=new%40x.example",
        ),
        (
            "https://billing.stripe.com/p/login/abc?#top",
            "a&b=c d@x.example",
            "https://billing.stripe.com/p/login/abc?prefilled_email=a%26b%3Dc%20d%40x.example#top",
        ),
    ],
)
def test_login_url_encodes_the_email_and_keeps_the_pages_query(login_page, email, expected):
    url = portal.login_url(login_page, email)
    assert url == expected
    assert parse_qs(urlsplit(url).query)["prefilled_email"] == [email]


# The gateway.


def test_gateway_creates_a_portal_session_for_the_customer(app, organisation, stripe_log):
    customer = _customer_id(app)
    with app.app_context():
        url = gateway().create_portal_session(customer, RETURN_URL)
    assert re.fullmatch(re.escape(stripe_log.api_base) + r"/p/session/bps_\w+", url)
    (sent,) = _session_requests(stripe_log)
    assert sent["params"] == {"customer": customer, "return_url": RETURN_URL}


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ({"status": 500}, "error"),
        ({"status": 429}, "busy"),
        ({"status": 401}, "refused"),
        ({"delay": 3}, "timeout"),
    ],
)
def test_gateway_maps_stripe_errors_to_a_reason(app, organisation, stripe_server, fault, reason):
    stripe_server.fault(method="POST", path="^/v1/billing_portal/sessions$", times=1, **fault)
    with app.app_context(), pytest.raises(StripeRequestFailed) as failure:
        gateway().create_portal_session(_customer_id(app), RETURN_URL)
    assert failure.value.reason == reason
    assert "sk_test" not in str(failure.value)


# The button on the Usage page.


def test_admin_without_whitelist_is_told_about_the_emailed_login_link(auth, organisation):
    auth.as_role("admin")
    html = auth.client.get("/settings/usage").get_data(as_text=True)
    assert 'data-flow="magic_link"' in html
    assert ">Email a portal login link<" in html
    assert "emails a one-time login link to the billing email, not to you" in html
    assert "the link goes only to exactly that address" in html
    assert "spam or junk folder" in html
    assert "change the billing email above" in html
    assert 'data-flow="direct"' not in html


@pytest.mark.parametrize(("role", "whitelisted"), [("billing", False), ("admin", True)])
def test_direct_members_are_told_they_go_straight_in(app, auth, organisation, role, whitelisted):
    update_organisation(app, portal_direct_access=whitelisted)
    auth.as_role(role)
    html = auth.client.get("/settings/usage").get_data(as_text=True)
    assert 'data-flow="direct"' in html
    assert "Straight into Stripe's portal for Northwind Msp, in a new tab" in html
    assert "one-time login link" not in html


@pytest.mark.parametrize("role", ["admin", "billing"])
def test_the_button_is_a_form_posting_to_a_new_tab_with_csrf(auth, organisation, role):
    auth.as_role(role)
    html = auth.client.get("/settings/usage").get_data(as_text=True)
    form = re.search(r'<form method="post" action="/settings/usage/billing-portal"[^>]*>', html)
    assert form is not None
    assert 'target="_blank"' in form.group(0)
    assert 'rel="noopener noreferrer"' in form.group(0)
    after = html[form.end() :]
    assert CSRF_INPUT.search(after[: after.index("</form>")])
    label = "Open Billing Portal" if role == "billing" else "Email a portal login link"
    assert f">{label}<" in html


def test_full_members_see_no_button_even_when_whitelisted(app, auth, organisation):
    update_organisation(app, portal_direct_access=True)
    auth.as_role("full_member")
    html = auth.client.get("/settings/usage").get_data(as_text=True)
    assert "billing@northwind.example" in html
    assert PORTAL not in html
    assert "Open Billing Portal" not in html


# Each role against both whitelist states.


@pytest.mark.parametrize("whitelisted", [False, True])
@pytest.mark.parametrize("role", ["admin", "full_member", "billing", "external_guest"])
def test_each_role_in_each_whitelist_state(app, auth, organisation, stripe_log, role, whitelisted):
    update_organisation(app, portal_direct_access=whitelisted)
    auth.as_role(role)
    response = auth.post(PORTAL)
    if role in ("full_member", "external_guest"):
        assert response.status_code == 403
        assert _session_requests(stripe_log) == []
    elif role == "billing" or whitelisted:
        assert response.status_code == 303
        (sent,) = _session_requests(stripe_log)
        assert sent["params"] == {"customer": _customer_id(app), "return_url": RETURN_URL}
        assert sent["status"] == 200
        location = response.headers["Location"]
        assert re.fullmatch(re.escape(stripe_log.api_base) + r"/p/session/bps_\w+", location)
        assert response.headers["Cache-Control"] == "no-store"
    else:
        assert response.status_code == 303
        assert response.headers["Location"] == _expected_login_url(
            stripe_log, "billing%40northwind.example"
        )
        assert _session_requests(stripe_log) == []


def test_each_click_creates_a_new_session(auth, organisation, stripe_log):
    auth.as_role("billing")
    first = auth.post(PORTAL).headers["Location"]
    second = auth.post(PORTAL).headers["Location"]
    assert first != second
    assert len(_session_requests(stripe_log)) == 2


def test_the_session_url_opens_the_customers_portal(auth, organisation, stripe_log):
    auth.as_role("billing")
    location = auth.post(PORTAL).headers["Location"]
    with urllib.request.urlopen(location, timeout=5) as page:  # noqa: S310
        html = page.read().decode()
    assert '<dd id="customer-email">billing@northwind.example</dd>' in html
    assert f'href="{RETURN_URL}"' in html


def test_magic_link_carries_a_plus_address_intact(app, auth, organisation, stripe_log):
    update_organisation(app, billing_email="billing+eu@x.example")
    auth.as_role("admin")
    response = auth.post(PORTAL)
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location == _expected_login_url(stripe_log, "billing%2Beu%40x.example")
    assert parse_qs(urlsplit(location).query) == {"prefilled_email": ["billing+eu@x.example"]}


def test_magic_link_keeps_the_configured_login_urls_query(app, auth, organisation, stripe_log):
    app.config["STRIPE_PORTAL_LOGIN_URL"] = stripe_log.portal_login_url + "?locale=fr"
    auth.as_role("admin")
    response = auth.post(PORTAL)
    assert response.headers["Location"] == (
        stripe_log.portal_login_url + "?locale=fr&prefilled_email=billing%40northwind.example"
    )


# Failures: a clear page in the new tab, with a way back and a retry.


def _assert_problem_page(response, status: int, title: str) -> str:
    html = response.get_data(as_text=True)
    assert response.status_code == status
    assert "Location" not in response.headers
    assert f'<h1 id="portal-error-heading">{title}</h1>' in html
    assert 'href="/settings/usage"' in html
    retry = re.search(r'<form method="post" action="/settings/usage/billing-portal">', html)
    assert retry is not None
    assert CSRF_INPUT.search(html[retry.end() :])
    assert "Traceback" not in html and "sk_test" not in html
    return html


@pytest.mark.parametrize(
    ("fault", "status", "title"),
    [
        ({"status": 500}, 502, "Stripe had a problem"),
        ({"status": 503}, 502, "Stripe had a problem"),
        ({"status": 429}, 503, "Stripe is busy"),
        ({"status": 401}, 502, "Stripe refused the request"),
        ({"delay": 3}, 504, "Stripe did not answer in time"),
    ],
)
def test_stripe_trouble_gives_a_clear_page(auth, organisation, stripe_server, fault, status, title):
    stripe_server.fault(method="POST", path="^/v1/billing_portal/sessions$", times=1, **fault)
    auth.as_role("billing")
    response = auth.post(PORTAL)
    _assert_problem_page(response, status, title)
    assert response.headers["Cache-Control"] == "no-store"


def test_retry_from_the_problem_page_opens_the_portal(auth, organisation, stripe_server):
    stripe_server.fault(method="POST", path="^/v1/billing_portal/sessions$", status=500, times=1)
    auth.as_role("billing")
    html = auth.post(PORTAL).get_data(as_text=True)
    retry = html[html.index(f'action="{PORTAL}"') :]
    token = CSRF_INPUT.search(retry).group(1)
    response = auth.client.post(PORTAL, data={"csrf_token": token})
    assert response.status_code == 303
    assert "/p/session/bps_" in response.headers["Location"]


def test_stripe_unreachable_gives_a_clear_page(app, auth, organisation):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    app.config["STRIPE_API_BASE"] = f"http://127.0.0.1:{closed_port}"
    stripe_gateway.init_app(app)
    auth.as_role("billing")
    _assert_problem_page(auth.post(PORTAL), 503, "Stripe cannot be reached")


@pytest.mark.parametrize("role", ["admin", "billing"])
def test_no_stripe_customer_linked(app, auth, organisation, stripe_log, role):
    update_organisation(app, stripe_customer_id=None)
    auth.as_role(role)
    html = _assert_problem_page(auth.post(PORTAL), 409, "Billing Portal not set up yet")
    assert "Northwind Msp is not linked to a Stripe customer yet" in html
    assert _session_requests(stripe_log) == []


def test_customer_unknown_to_stripe(app, auth, organisation):
    update_organisation(app, stripe_customer_id="cus_gone")
    auth.as_role("billing")
    _assert_problem_page(auth.post(PORTAL), 409, "Stripe account not found")


@pytest.mark.parametrize("login_page", [None, "", "not a url"])
def test_login_url_not_configured(app, auth, organisation, login_page):
    app.config["STRIPE_PORTAL_LOGIN_URL"] = login_page
    auth.as_role("admin")
    _assert_problem_page(auth.post(PORTAL), 503, "Billing Portal login not available")


def test_direct_access_does_not_need_the_login_url(app, auth, organisation):
    app.config["STRIPE_PORTAL_LOGIN_URL"] = None
    auth.as_role("billing")
    assert auth.post(PORTAL).status_code == 303


# CSRF, rate limit, logging.


@pytest.mark.parametrize("token", [None, "forged"])
def test_without_a_valid_csrf_token_nothing_is_created(auth, organisation, stripe_log, token):
    auth.as_role("billing")
    data = {} if token is None else {"csrf_token": token}
    response = auth.client.post(PORTAL, data=data)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert _session_requests(stripe_log) == []


def test_portal_opening_is_rate_limited_per_member(app, auth, organisation, stripe_log):
    auth.as_role("billing")
    for _ in range(10):
        assert auth.post(PORTAL).status_code == 303
    response = auth.post(PORTAL)
    html = _assert_problem_page(response, 429, "Too many portal openings")
    assert "Wait a minute, then try again." in html
    assert len(_session_requests(stripe_log)) == 10

    other = Auth(app.test_client()).as_role("admin")
    assert other.post(PORTAL).status_code == 303


def test_portal_openings_are_logged_without_secrets(app, auth, organisation, billing_log):
    auth.as_role("billing")
    location = auth.post(PORTAL).headers["Location"]
    Auth(app.test_client()).as_role("admin").post(PORTAL)
    with app.app_context():
        ids = dict(db.session.execute(select(Member.role, Member.id)).all())
    messages = [r.getMessage() for r in billing_log.records]
    assert (
        f"billing portal opened: member={ids['billing']} organisation=northwind-msp flow=direct"
        in messages
    )
    assert (
        f"billing portal opened: member={ids['admin']} organisation=northwind-msp "
        "flow=magic_link" in messages
    )
    session_id = location.rsplit("/", 1)[1]
    assert session_id not in billing_log.text
    assert "sk_test" not in billing_log.text
    assert "billing@northwind.example" not in billing_log.text


def test_failures_are_logged_with_their_reason(auth, organisation, stripe_server, billing_log):
    stripe_server.fault(method="POST", path="^/v1/billing_portal/sessions$", status=500, times=1)
    auth.as_role("billing")
    auth.post(PORTAL)
    (record,) = billing_log.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().endswith("flow=direct reason=error")
    assert (record.organisation, record.flow, record.reason) == ("northwind-msp", "direct", "error")


# The whitelist commands.


def _audit_events(app) -> list[tuple]:
    with app.app_context():
        return db.session.execute(
            select(
                AuditEvent.action,
                AuditEvent.source,
                AuditEvent.old_value,
                AuditEvent.new_value,
                AuditEvent.member_id,
            ).order_by(AuditEvent.id)
        ).all()


def _direct_access(app) -> bool:
    with app.app_context():
        return db.session.scalar(select(Organisation.portal_direct_access))


def test_whitelist_and_unwhitelist_take_effect_on_the_next_click(
    app, auth, organisation, stripe_log
):
    runner = app.test_cli_runner()
    auth.as_role("admin")
    assert "prefilled_email=" in auth.post(PORTAL).headers["Location"]

    result = runner.invoke(args=["billing", "whitelist", "northwind-msp"])
    assert result.exit_code == 0, result.output
    assert "northwind-msp is now whitelisted" in result.output
    assert _direct_access(app) is True
    assert _audit_events(app) == [("portal_direct_access_changed", "staff", "false", "true", None)]
    assert "/p/session/bps_" in auth.post(PORTAL).headers["Location"]

    result = runner.invoke(args=["billing", "unwhitelist", "northwind-msp"])
    assert result.exit_code == 0, result.output
    assert "northwind-msp is no longer whitelisted" in result.output
    assert _direct_access(app) is False
    assert _audit_events(app)[1:] == [
        ("portal_direct_access_changed", "staff", "true", "false", None)
    ]
    assert "prefilled_email=" in auth.post(PORTAL).headers["Location"]


@pytest.mark.parametrize(
    ("command", "already", "message"),
    [
        ("whitelist", True, "northwind-msp is already whitelisted"),
        ("unwhitelist", False, "northwind-msp is not whitelisted"),
    ],
)
def test_whitelist_commands_say_when_nothing_changes(app, organisation, command, already, message):
    update_organisation(app, portal_direct_access=already)
    result = app.test_cli_runner().invoke(args=["billing", command, "northwind-msp"])
    assert result.exit_code == 0, result.output
    assert message in result.output
    assert "nothing changed" in result.output
    assert _direct_access(app) is already
    assert _audit_events(app) == []


@pytest.mark.parametrize("command", ["whitelist", "unwhitelist"])
def test_whitelist_commands_refuse_an_unknown_organisation(app, organisation, command):
    result = app.test_cli_runner().invoke(args=["billing", command, "no-such-org"])
    assert result.exit_code != 0
    assert "No organisation with slug 'no-such-org'." in result.output
    assert _audit_events(app) == []
