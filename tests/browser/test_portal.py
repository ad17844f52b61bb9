"""The Billing Portal button in Chromium: the portal opens in a new tab without an opener."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.factories import PASSWORD, update_organisation

pytestmark = [pytest.mark.browser, pytest.mark.stripe_customer]


def _open_portal(page, context, label="Open Billing Portal"):
    """Click the button on the Usage page and return the tab it opened, once loaded."""
    with context.expect_page() as new_page_info:
        page.get_by_role("button", name=label).click()
    portal_tab = new_page_info.value
    portal_tab.wait_for_load_state()
    return portal_tab


def test_billing_member_goes_straight_into_the_portal(
    page, context, live_server, organisation, stripe_server
):
    sign_in(page, "billing@northwind-msp.example", PASSWORD)
    expect(page.locator("#portal-flow")).to_contain_text("Straight into Stripe's portal")

    portal_tab = _open_portal(page, context)

    expect(portal_tab).to_have_url(re.compile(re.escape(stripe_server.api_base) + r"/p/session/"))
    expect(portal_tab.locator("#customer-email")).to_have_text("billing@northwind.example")
    return_link = portal_tab.get_by_role("link", name="Return to Petra")
    expect(return_link).to_have_attribute("href", f"{live_server.url}/settings/usage")
    assert portal_tab.evaluate("window.opener === null")
    expect(page).to_have_url(f"{live_server.url}/settings/usage")

    return_link.click()
    expect(portal_tab).to_have_url(f"{live_server.url}/settings/usage")
    expect(portal_tab.get_by_role("heading", name="Settings · Usage")).to_be_visible()


def test_admin_gets_the_login_page_with_the_billing_email_filled_in(
    app, page, context, organisation, stripe_server
):
    update_organisation(app, billing_email="billing+eu@x.example")
    sign_in(page, "admin@northwind-msp.example", PASSWORD)
    # Where the link goes is said beside the button; what to do if it does not come is folded.
    expect(page.locator("#portal-flow")).to_contain_text("emails a one-time login link")
    expect(page.locator("#portal-flow")).to_be_visible()
    expect(page.get_by_text("spam or junk folder")).to_be_hidden()
    page.get_by_text("If the login link does not arrive").click()
    expect(page.get_by_text("spam or junk folder")).to_be_visible()

    portal_tab = _open_portal(page, context, "Email a portal login link")

    expect(portal_tab).to_have_url(re.compile(re.escape(stripe_server.portal_login_url)))
    expect(portal_tab.locator("#email")).to_have_value("billing+eu@x.example")
    assert portal_tab.evaluate("window.opener === null")


def test_stripe_trouble_shows_a_page_with_a_retry_in_the_new_tab(
    page, context, live_server, organisation, stripe_server
):
    stripe_server.fault(method="POST", path="^/v1/billing_portal/sessions$", status=500, times=1)
    sign_in(page, "billing@northwind-msp.example", PASSWORD)

    portal_tab = _open_portal(page, context)

    expect(portal_tab.get_by_role("heading", name="Stripe had a problem")).to_be_visible()
    expect(portal_tab.get_by_role("link", name="Back to Settings · Usage")).to_have_attribute(
        "href", "/settings/usage"
    )
    assert portal_tab.evaluate("window.opener === null")
    assert portal_tab.evaluate("document.referrer") == ""

    portal_tab.get_by_role("button", name="Try again").click()
    expect(portal_tab.locator("#customer-email")).to_have_text("billing@northwind.example")
