"""Each role signs in through Chromium and sees the Usage page, or the 403, it should."""

import base64
import hashlib

import pytest
from playwright.sync_api import expect

from billing_app import config
from tests.browser.conftest import HTMX_FILE, sign_in
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.stripe_customer]


def test_pinned_htmx_file_matches_its_integrity_hash():
    digest = base64.b64encode(hashlib.sha384(HTMX_FILE.read_bytes()).digest()).decode()
    assert config.HTMX_INTEGRITY == f"sha384-{digest}"


@pytest.mark.parametrize("role", ["admin", "full_member", "billing"])
def test_member_signs_in_and_sees_the_usage_page(page, organisation, role):
    sign_in(page, f"{role}@northwind-msp.example", PASSWORD)
    expect(page).to_have_url("/settings/usage")
    expect(page.get_by_role("heading", name="Settings · Usage")).to_be_visible()
    expect(page.locator("#billing-email")).to_contain_text("billing@northwind.example")
    # htmx loaded from the CDN address and passed Chromium's integrity check.
    assert page.evaluate("typeof window.htmx") == "object"
    assert page.evaluate("window.htmx.version") == config.HTMX_VERSION


def test_external_guest_sees_the_403_page(page, organisation):
    sign_in(page, "external_guest@northwind-msp.example", PASSWORD)
    expect(page.get_by_role("heading", name="No access")).to_be_visible()
    expect(page.get_by_text("You do not have access to this page")).to_be_visible()


def test_wrong_password_shows_an_error_and_keeps_the_email(page, organisation):
    sign_in(page, "admin@northwind-msp.example", "wrong")
    expect(page.get_by_role("alert")).to_contain_text("Email or password is incorrect.")
    expect(page.get_by_label("Email")).to_have_value("admin@northwind-msp.example")


def test_sign_out(page, organisation):
    sign_in(page, "admin@northwind-msp.example", PASSWORD)
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url("/login")
    page.goto("/settings/usage")
    expect(page).to_have_url("/login?next=/settings/usage")
