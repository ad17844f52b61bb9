"""No dead ends, in Chromium: the front door, the guest's way out of the 403 page, and what the
login page says."""

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.stripe_customer]


def test_front_door_leads_to_sign_in_then_to_the_usage_page(page, organisation):
    page.goto("/")
    expect(page).to_have_url("/login?next=/settings/usage")
    expect(page.get_by_role("status")).to_have_text("Sign in to see your organisation's usage.")
    page.get_by_label("Email").fill("billing@northwind-msp.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url("/settings/usage")
    page.goto("/")
    expect(page).to_have_url("/settings/usage")


def test_guest_signs_out_from_the_403_page_and_in_as_someone_else(page, organisation):
    sign_in(page, "external_guest@northwind-msp.example", PASSWORD)
    expect(page.get_by_role("heading", name="No access")).to_be_visible()
    main = page.locator("main")
    expect(main.get_by_role("link")).to_have_count(0)
    main.get_by_role("button", name="Sign out and use another account").click()
    expect(page).to_have_url("/login")
    expect(page.get_by_role("status")).to_have_text("You have been signed out.")
    sign_in(page, "admin@northwind-msp.example", PASSWORD)
    expect(page).to_have_url("/settings/usage")
