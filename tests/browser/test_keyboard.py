"""Every action on the Usage page by keyboard alone: edit, save, cancel, month change,
download and portal, each control reached with Tab and showing a visible focus."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from billing_app.extensions import db
from billing_app.models import Organisation
from tests.browser.conftest import AXE_FILE, FOCUSED, axe_violations, sign_in
from tests.factories import ALWAYS, PASSWORD, add_tenant, unique_email

pytestmark = [pytest.mark.browser, pytest.mark.stripe_customer]


def tab_to(page: Page, name: str | None = None, selector: str | None = None) -> dict:
    """Press Tab until the control named `name` (or matching `selector`) has the focus."""
    for _ in range(60):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        if (name and focused["name"] == name) or (
            selector and page.evaluate("s => document.activeElement.matches(s)", selector)
        ):
            assert focused["outline"] or focused["shadow"], f"no visible focus on {focused}"
            return focused
    raise AssertionError(f"Tab never reached {name or selector!r}")


def wait_until_selected(field) -> None:
    """The opened form selects the current address once settled, so typing replaces it."""
    expect(field).to_have_attribute("data-opened", "true")


@pytest.fixture
def with_usage(app, organisation) -> None:
    """Northwind with a tenant onboarded mid-January 2026, so there is a report to download."""
    with app.app_context():
        org = db.session.scalar(select(Organisation).filter_by(slug="northwind-msp"))
        add_tenant(org, "Contoso Ltd", onboarded_on="2026-01-20", users=(("Grace", ALWAYS),))


@pytest.fixture
def admin_page(page: Page, with_usage) -> Page:
    page.add_init_script(AXE_FILE.read_text(encoding="utf-8"))
    sign_in(page, "admin@northwind-msp.example", PASSWORD)
    expect(page).to_have_url("/settings/usage")
    return page


def test_edit_error_cancel_and_save_by_keyboard(admin_page, stripe_client, organisation):
    page = admin_page
    tab_to(page, "Edit billing email")
    page.keyboard.press("Enter")
    field = page.get_by_label("Billing email")
    expect(field).to_be_focused()
    wait_until_selected(field)
    page.keyboard.type("not an address")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("cannot contain spaces")
    expect(field).to_have_value("not an address")
    assert axe_violations(page) == []

    field.focus()
    page.keyboard.press("Escape")
    expect(page.locator("#billing-email")).to_contain_text("billing@northwind.example")
    expect(page.locator("#billing-email-input")).to_have_count(0)

    tab_to(page, "Edit billing email")
    page.keyboard.press("Enter")
    expect(field).to_be_focused()
    wait_until_selected(field)
    new_address = unique_email("keyboard")
    page.keyboard.type(new_address)
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Save", exact=True)).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#billing-email-input")).to_have_count(0)
    expect(page.locator("#billing-email")).to_contain_text(new_address)
    customer = stripe_client.v1.customers.retrieve(organisation.stripe_customer_id)
    assert customer.email == new_address


def test_month_change_and_download_by_keyboard(admin_page, report_worker):
    page = admin_page
    tab_to(page, selector="#month-picker")
    expect(page.locator("#month-picker")).to_be_focused()
    page.keyboard.press("End")
    expect(page.locator("#usage-month-heading")).to_have_text("January 2026")
    expect(page).to_have_url("/settings/usage?month=2026-01")

    tab_to(page, "Download report for January 2026 (.xlsx)")
    with page.expect_download() as info:
        page.keyboard.press("Enter")
    assert info.value.suggested_filename == "usage-northwind-msp-2026-01.xlsx"


def test_portal_by_keyboard(admin_page, context):
    page = admin_page
    tab_to(page, "Email a portal login link")
    with context.expect_page() as new_tab:
        page.keyboard.press("Enter")
    portal = new_tab.value
    portal.wait_for_load_state()
    expect(portal.locator("#email")).to_have_value("billing@northwind.example")
