"""API access in Chromium, at desktop and phone widths: create a token on the Usage page,
copy it with the button, see it listed, revoke it after the browser's confirmation; and the
same without JavaScript, on the section's own page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import axe_violations, sideways_scroll, sign_in
from tests.factories import PASSWORD

pytestmark = pytest.mark.browser

SECRET = re.compile(r"^petra_[A-Za-z0-9_-]{32,}$")


@pytest.mark.parametrize("width", [1280, 390])
def test_create_copy_and_revoke_on_the_usage_page(context, checked_page, organisation, width):
    page = checked_page
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, "admin@northwind-msp.example", PASSWORD)
    section = page.locator("#api-tokens")
    expect(section.get_by_role("heading", name="API access")).to_be_visible()
    expect(section.locator("#api-tokens-empty")).to_have_text("No API tokens yet.")

    section.get_by_label("Name").fill("Halo PSA sync")
    section.get_by_label(re.compile("Invoices")).check()
    section.get_by_label("Expires after").select_option("365")
    section.get_by_role("button", name="Create token").click()

    secret = section.locator("#api-token-secret")
    expect(secret).to_have_text(SECRET)
    token = secret.inner_text()
    expect(page).to_have_url(re.compile(r"/settings/usage$"))  # htmx: the page stays
    section.get_by_role("button", name="Copy").click()
    expect(section.locator("[data-copy-status]")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == token

    row = section.locator("tr[data-state=active]")
    expect(row.locator("th")).to_have_text("Halo PSA sync")
    expect(row).to_contain_text(token[:12] + "…")
    expect(row).to_contain_text("usage:read, invoices:read")
    assert sideways_scroll(page) == []
    assert axe_violations(page) == []

    # Dismissing the confirmation keeps the token; accepting it revokes the token.
    page.once("dialog", lambda dialog: dialog.dismiss())
    row.get_by_role("button", name="Revoke Halo PSA sync").click()
    expect(section.locator("tr[data-state=active]")).to_have_count(1)
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Revoke Halo PSA sync").click()
    expect(section.locator("tr[data-state=revoked]")).to_contain_text("Revoked")
    expect(section.locator("#api-token-secret")).to_have_count(0)
    assert sideways_scroll(page) == []


def test_every_control_works_without_javascript(browser, live_server, organisation):
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, "admin@northwind-msp.example", PASSWORD)
        page.get_by_role("link", name="Manage API tokens").click()
        expect(page).to_have_url(re.compile(r"/settings/usage/api-tokens$"))
        page.get_by_label("Name").fill("Rewst")
        page.get_by_role("button", name="Create token").click()
        expect(page.locator("#api-token-secret")).to_have_text(SECRET)
        expect(page.get_by_role("button", name="Copy")).to_be_hidden()  # select it instead
        page.get_by_role("button", name="Revoke Rewst").click()
        expect(page).to_have_url(re.compile(r"/settings/usage/api-tokens$"))
        expect(page.locator("tr[data-state=revoked]")).to_contain_text("Rewst")
        expect(page.locator("#api-token-secret")).to_have_count(0)
    finally:
        context.close()
