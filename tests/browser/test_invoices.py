"""The invoices section in Chromium: it loads after the page, says so when Stripe fails or is
slow (with a retry) while the rest of the page stays whole, and opens invoices in a new tab."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from dev.stripe_local.invoices import create_invoices
from tests.browser.conftest import AXE_FILE, axe_violations, sign_in
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.stripe_customer]

SPECS = [
    {"period": "2026-08", "amount": 181_250, "status": "paid"},
    {"period": "2026-09", "amount": 190_000, "status": "open"},  # long past due
    {"period": "2026-10", "amount": 204_575, "status": "void"},
    {"period": "2026-10", "amount": 192_575, "status": "paid", "created": "2026-11-03"},
    {"period": "2026-11", "amount": 210_125, "status": "open", "created": "2099-12-01"},
]


@pytest.fixture
def invoices(organisation, stripe_server) -> list[dict]:
    return create_invoices(stripe_server.api_base, organisation.stripe_customer_id, SPECS)


def expect_rest_of_page_whole(page) -> None:
    expect(page.get_by_role("heading", name="Settings · Usage")).to_be_visible()
    expect(page.get_by_text("billing@northwind.example").first).to_be_visible()
    expect(page.locator("#portal-button")).to_be_visible()
    expect(page.locator("#month-picker")).to_be_visible()
    expect(page.locator("#usage-month")).to_be_visible()


def test_invoices_load_into_the_page(page, invoices):
    sign_in(page, "admin@northwind-msp.example", PASSWORD)

    table = page.locator("#invoices-table")
    expect(table).to_be_visible()
    expect(page.locator("#invoices-list")).to_have_attribute("aria-busy", "false")
    expect(table.locator("tbody tr")).to_have_count(5)
    first = table.locator("tbody tr").first
    expect(first.locator(".invoice-period")).to_have_text("November 2026")
    expect(first.locator(".invoice-amount")).to_have_text("$2,101.25")
    expect(first.locator(".invoice-status")).to_contain_text("Open")
    expect(first.locator(".invoice-status")).to_contain_text("due 31 Dec 2099")
    expect(table.locator("tr[data-state=overdue] .invoice-status")).to_contain_text(
        "was due 31 Oct 2026"
    )
    expect(table.locator("tr[data-state=void] .invoice-status")).to_contain_text("Void")
    expect(page.locator("#invoices-terms")).to_have_text(
        "Invoices are issued at the end of each month and are due in 30 days."
    )
    expect_rest_of_page_whole(page)


def test_stripe_down_says_so_with_a_retry_and_the_page_stays_whole(page, invoices, stripe_server):
    stripe_server.fault(method="GET", path="^/v1/invoices$", status=500)
    sign_in(page, "billing@northwind-msp.example", PASSWORD)

    problem = page.locator("#invoices-problem")
    expect(problem).to_contain_text("Invoices could not be loaded: Stripe had a problem")
    expect(page.locator("#invoices-table")).to_have_count(0)
    expect_rest_of_page_whole(page)

    stripe_server.clear_faults()
    page.get_by_role("link", name="Try again").click()
    expect(page.locator("#invoices-table tbody tr")).to_have_count(5)
    expect(problem).to_have_count(0)
    expect(page).to_have_url(re.compile(r"/settings/usage$"))


def test_slow_stripe_times_out_into_a_retry_while_the_page_is_already_whole(
    page, invoices, stripe_server
):
    stripe_server.fault(method="GET", path="^/v1/invoices$", delay=4)
    sign_in(page, "admin@northwind-msp.example", PASSWORD, settled=False)

    # Signed in and the page is there while Stripe has not answered yet.
    expect(page.get_by_text("Loading invoices from Stripe…")).to_be_visible()
    expect(page.locator("#invoices-list")).to_have_attribute("aria-busy", "true")
    expect_rest_of_page_whole(page)

    expect(page.locator("#invoices-problem")).to_contain_text("Stripe did not answer in time")
    expect(page.get_by_role("link", name="Try again")).to_be_visible()
    expect_rest_of_page_whole(page)


def test_open_takes_the_member_to_the_invoice_at_stripe_in_a_new_tab(
    page, context, invoices, stripe_server
):
    sign_in(page, "admin@northwind-msp.example", PASSWORD)
    newest = invoices[-1]

    with context.expect_page() as new_tab:
        page.get_by_role("link", name=f"Open invoice {newest['number']} on Stripe").click()
    tab = new_tab.value
    tab.wait_for_load_state()

    expect(tab).to_have_url(re.compile(re.escape(stripe_server.api_base) + r"/p/invoices/inv_"))
    expect(tab.locator("#invoice-number")).to_have_text(newest["number"])
    assert tab.evaluate("window.opener === null")
    assert tab.evaluate("document.referrer") == ""


def test_without_javascript_the_link_shows_the_invoices(browser, live_server, invoices):
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        page = context.new_page()
        sign_in(page, "admin@northwind-msp.example", PASSWORD)
        page.get_by_role("link", name="Show invoices").click()
        expect(page).to_have_url(re.compile(r"/settings/usage/invoices$"))
        expect(page.locator("#invoices-table tbody tr")).to_have_count(5)
    finally:
        context.close()


@pytest.mark.parametrize("width", [360, 390])
def test_no_sideways_scroll_on_a_phone(page, invoices, width):
    page.set_viewport_size({"width": width, "height": 800})
    sign_in(page, "admin@northwind-msp.example", PASSWORD)
    expect(page.locator("#invoices-table tbody tr")).to_have_count(5)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    links = page.locator("#invoices-table tbody tr").first.locator(".invoice-links a")
    expect(links).to_have_count(2)
    box = links.last.bounding_box()
    assert box is not None and box["x"] + box["width"] <= width


def test_the_section_passes_axe_loaded_and_failing(page, invoices, stripe_server):
    page.add_init_script(AXE_FILE.read_text(encoding="utf-8"))
    sign_in(page, "billing@northwind-msp.example", PASSWORD)
    expect(page.locator("#invoices-table tbody tr")).to_have_count(5)
    assert axe_violations(page) == []

    stripe_server.fault(method="GET", path="^/v1/invoices$", status=503)
    page.reload()
    expect(page.locator("#invoices-problem")).to_be_visible()
    assert axe_violations(page) == []


@pytest.mark.parametrize("width", [360, 390, 1280])
def test_what_is_owed_comes_first_with_a_way_to_pay(page, invoices, width):
    page.set_viewport_size({"width": width, "height": 800})
    page.add_init_script(AXE_FILE.read_text(encoding="utf-8"))
    sign_in(page, "billing@northwind-msp.example", PASSWORD)
    banner = page.locator("#amount-due-banner")
    overdue = invoices[1]
    expect(banner).to_contain_text("Past due: $1,900.00")
    if width > 600:
        expect(banner).to_contain_text(
            f", since 31 Oct 2026. Invoice {overdue['number']}. $4,001.25 is unpaid in all."
        )
    else:  # one line on a phone: the amount and the way to pay
        assert banner.bounding_box()["height"] < 60
    pay = page.locator("#amount-due-pay")
    expect(pay).to_contain_text("Pay now")
    expect(pay).to_have_attribute("href", f"/settings/usage/invoices/{overdue['id']}")
    # Above the billing card, in the first screenful.
    top = banner.bounding_box()
    billing = page.locator("section.billing").bounding_box()
    assert top is not None and billing is not None
    assert top["y"] + top["height"] <= billing["y"] and top["y"] < 800
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert axe_violations(page) == []


def test_no_banner_when_stripe_is_down_and_the_page_stays_whole(page, invoices, stripe_server):
    stripe_server.fault(method="GET", path="^/v1/invoices$", status=500)
    sign_in(page, "admin@northwind-msp.example", PASSWORD)
    expect(page.locator("#invoices-problem")).to_be_visible()
    expect(page.locator("#amount-due-banner")).to_have_count(0)
    expect_rest_of_page_whole(page)
