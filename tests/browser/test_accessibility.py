"""Accessibility: axe-core in Chromium over the login and Usage pages, and keyboard focus.

axe-core comes from its npm package (`npm pack axe-core@4.14.1`, `package/axe.min.js`),
vendored in tests/browser/assets. It is added with Playwright's init script, which the page's
Content-Security-Policy does not apply to, so the pages are checked with their real policy.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import AXE_FILE, AXE_INTEGRITY, FOCUSED, axe_violations, sign_in
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.stripe_customer]


def test_vendored_axe_core_is_the_published_file():
    digest = base64.b64encode(hashlib.sha256(AXE_FILE.read_bytes()).digest()).decode()
    assert f"sha256-{digest}" == AXE_INTEGRITY


def test_login_page(checked_page, organisation):
    checked_page.goto("/login")
    expect(checked_page.get_by_role("heading", name="Sign in to Petra")).to_be_visible()
    assert axe_violations(checked_page) == []


def test_login_page_with_errors(checked_page, organisation):
    sign_in(checked_page, "admin@northwind-msp.example", "wrong")
    expect(checked_page.get_by_role("alert")).to_be_visible()
    assert axe_violations(checked_page) == []


@pytest.mark.parametrize("role", ["admin", "full_member", "billing"])
def test_usage_page(checked_page, organisation, role):
    sign_in(checked_page, f"{role}@northwind-msp.example", PASSWORD)
    expect(checked_page).to_have_url("/settings/usage")
    assert axe_violations(checked_page) == []


def test_usage_page_with_the_billing_email_form_open(checked_page, organisation):
    sign_in(checked_page, "admin@northwind-msp.example", PASSWORD)
    expect(checked_page).to_have_url("/settings/usage")
    checked_page.wait_for_function("typeof window.htmx === 'object'")
    checked_page.get_by_role("button", name="Edit billing email").click()
    expect(checked_page).to_have_url("/settings/usage")
    expect(checked_page.get_by_label("Billing email")).to_be_focused()
    assert axe_violations(checked_page) == []


def test_no_access_page(checked_page, organisation):
    sign_in(checked_page, "external_guest@northwind-msp.example", PASSWORD)
    expect(checked_page.get_by_role("heading", name="No access")).to_be_visible()
    assert axe_violations(checked_page) == []


def _tab_through(page: Page, presses: int = 40) -> list[dict]:
    stops = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        if focused["tag"] == "body" or (stops and focused == stops[0]):
            break
        stops.append(focused)
    return stops


@pytest.mark.parametrize(
    ("role", "controls"),
    [
        (
            "admin",
            ["Skip to content", "Sign out", "Edit billing email", "Email a portal login link"],
        ),
        ("billing", ["Skip to content", "Sign out", "Open Billing Portal"]),
        ("full_member", ["Skip to content", "Sign out"]),
    ],
)
def test_tab_reaches_the_main_controls_with_a_visible_focus(page, organisation, role, controls):
    sign_in(page, f"{role}@northwind-msp.example", PASSWORD)
    expect(page).to_have_url("/settings/usage")
    page.wait_for_load_state("load")
    stops = _tab_through(page)
    names = [stop["name"] for stop in stops]
    positions = [names.index(control) for control in controls]
    assert positions == sorted(positions), names
    for stop in stops:
        assert stop["visible"], stop
        assert stop["outline"] or stop["shadow"], f"no visible focus on {stop}"


def test_login_form_by_keyboard_alone(page, organisation):
    page.goto("/login")
    stops = _tab_through(page)
    assert [stop["tag"] for stop in stops] == ["a", "input", "input", "button"]
    assert all(stop["outline"] for stop in stops)
    page.goto("/login")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.type("admin@northwind-msp.example")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url("/settings/usage")
