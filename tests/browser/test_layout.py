"""Phones: at 360 and 390 px wide no page scrolls sideways in any state, and each is axe-clean
there; nothing overflows at 1280 either. Wide tables scroll inside their own box."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from billing_app.extensions import db
from billing_app.figures.months import Month, today_utc
from billing_app.models import Organisation, Tenant
from dev.stripe_local.invoices import create_invoices
from tests.browser.conftest import (
    AXE_FILE,
    Held,
    axe_violations,
    reads_held,
    sideways_scroll,
    sign_in,
)
from tests.factories import ALWAYS, PASSWORD, add_tenant, unique_email

pytestmark = [pytest.mark.browser, pytest.mark.stripe_customer]

PHONES = [360, 390]
WIDTHS = [*PHONES, 1280]
LONG_NAME = "Northwind Traders Regional Healthcare Partnership Incorporated"
UNBROKEN = "Fabrikam" * 8


@pytest.fixture
def usage(app, organisation, stripe_server) -> str:
    """Northwind with tenants that make wide rows (long names, one without spaces, a paused
    one), an emailed change of its billing email, and invoices: the external id of the first
    tenant."""
    with app.app_context():
        org = db.session.scalar(select(Organisation).filter_by(slug="northwind-msp"))
        add_tenant(
            org,
            LONG_NAME,
            pauses=(("2026-02-01", "2026-02-10"),),
            users=tuple((f"User {n} With A Rather Long Display Name", ALWAYS) for n in range(3)),
        )
        add_tenant(org, UNBROKEN, onboarded_on="2026-03-14", users=(("Ada", ALWAYS),))
        add_tenant(org, "Tailspin Toys", offboarded_on="2026-06-20", users=(("Mary", ALWAYS),))
        first = db.session.scalar(select(Tenant.external_id).filter_by(name=LONG_NAME))
    create_invoices(
        stripe_server.api_base,
        organisation.stripe_customer_id,
        [
            {"period": "2026-09", "amount": 190_000, "status": "open"},
            {"period": "2026-10", "amount": 204_575, "status": "void"},
            {"period": "2026-10", "amount": 192_575, "status": "paid", "created": "2026-11-03"},
        ],
    )
    return first


def at(page: Page, width: int) -> Page:
    page.set_viewport_size({"width": width, "height": 800 if width > 500 else 844})
    return page


def assert_fits(page: Page, width: int, allowed: tuple[str, ...] = ()) -> None:
    """No sideways scroll; and at a phone's width, no axe violations either."""
    assert sideways_scroll(page) == []
    if width in PHONES:
        assert axe_violations(page, allowed) == []


def open_folds(page: Page) -> None:
    """Open every folded part of the page (an open fold must fit too)."""
    for summary in page.locator("details > summary").all():
        summary.click()
    expect(page.locator("details:not([open])")).to_have_count(0)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("role", ["admin", "full_member", "billing"])
def test_usage_page_for_each_role(checked_page, usage, role, width):
    page = at(checked_page, width)
    sign_in(page, f"{role}@northwind-msp.example", PASSWORD)
    expect(page.locator("#tenant-table")).to_be_visible()
    if role != "full_member":
        expect(page.locator("#invoices-table tbody tr")).to_have_count(3)
    open_folds(page)
    assert_fits(page, width)
    # The top bar keeps "Sign out" on one line.
    sign_out = page.get_by_role("button", name="Sign out", exact=True)
    line = float(sign_out.evaluate("b => parseFloat(getComputedStyle(b).lineHeight)"))
    assert sign_out.bounding_box()["height"] < 1.5 * line


@pytest.mark.parametrize("width", WIDTHS)
def test_usage_page_of_a_past_month(checked_page, usage, width):
    page = at(checked_page, width)
    sign_in(page, "admin@northwind-msp.example", PASSWORD)
    page.goto("/settings/usage?month=2026-02")
    expect(page.locator("#usage-month-heading")).to_have_text("February 2026")
    assert_fits(page, width)


@pytest.mark.parametrize("width", WIDTHS)
def test_billing_email_form_open_then_with_an_error(checked_page, usage, width):
    page = at(checked_page, width)
    sign_in(page, "admin@northwind-msp.example", PASSWORD)
    page.wait_for_function("typeof window.htmx === 'object'")
    page.get_by_role("button", name="Edit billing email").click()
    field = page.get_by_role("textbox", name="Billing email")
    expect(field).to_be_focused()
    assert_fits(page, width)
    field.fill("someone.with.a.very.long.address@a-rather-long-subdomain.northwind.example>")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#billing-email").get_by_role("alert")).to_be_visible()
    assert_fits(page, width)


@pytest.mark.parametrize("width", WIDTHS)
def test_busy_and_failed_states(app, checked_page, usage, stripe_server, width):
    page = at(checked_page, width)
    sign_in(page, "admin@northwind-msp.example", PASSWORD)
    page.wait_for_function("typeof window.htmx === 'object'")
    picker = page.get_by_label("Month", exact=True)
    # A month on its way.
    held = Held(page, "**/settings/usage/summary?*")
    picker.select_option("2026-02")
    held.wait_for(1)
    expect(page.locator("#usage-month")).to_have_attribute("aria-busy", "true")
    assert_fits(page, width)
    held.release()
    expect(page.locator("#usage-month-heading")).to_have_text("February 2026")
    # An export being prepared.
    with page.expect_download(), reads_held(app):
        page.locator("#export-users-csv").click()
        expect(page.locator("#export-status")).not_to_be_empty()
        assert_fits(page, width)
    # A month that could not be fetched.
    page.route("**/settings/usage/summary?*", lambda route: route.abort("connectionfailed"))
    picker.select_option("2026-03")
    expect(page.locator(".usage-head [data-month-problem]")).to_be_visible()
    assert_fits(page, width)
    # A save that Stripe refused.
    page.get_by_role("button", name="Edit billing email").click()
    path = f"^/v1/customers/{usage_customer(app)}$"
    stripe_server.fault(method="POST", path=path, times=1, status=500)
    page.get_by_role("textbox", name="Billing email").fill(unique_email())
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#billing-email-problem")).to_be_visible()
    assert_fits(page, width)
    # The save once Stripe answers: its confirmation quotes the address, wrapped to fit.
    long_address = unique_email().replace("@", "billingmailbox@")
    page.get_by_role("textbox", name="Billing email").fill(long_address)
    page.get_by_role("button", name="Save", exact=True).click()
    notice = page.locator("#billing-email-notice")
    expect(notice).to_contain_text(long_address)
    assert notice.evaluate("e => e.scrollWidth <= e.clientWidth"), "the confirmation is cut off"
    assert_fits(page, width)


def usage_customer(app) -> str:
    with app.app_context():
        return db.session.scalar(
            select(Organisation.stripe_customer_id).filter_by(slug="northwind-msp")
        )


@pytest.mark.parametrize("width", WIDTHS)
def test_tenant_page(checked_page, usage, width):
    page = at(checked_page, width)
    sign_in(page, "admin@northwind-msp.example", PASSWORD)
    page.goto(f"/settings/usage/tenants/{usage}?month=2026-02")
    expect(page.get_by_role("heading", level=1)).to_have_text(LONG_NAME)
    assert_fits(page, width)
    # The users' table scrolls in its own box rather than widening the page.
    scroll = page.locator(".table-scroll").first
    assert scroll.evaluate("e => getComputedStyle(e).overflowX") == "auto"


@pytest.mark.parametrize("width", WIDTHS)
def test_login_page_and_its_error(checked_page, organisation, width):
    page = at(checked_page, width)
    page.goto("/settings/usage")
    expect(page.get_by_role("heading", name="Sign in to Petra")).to_be_visible()
    assert_fits(page, width)
    sign_in(page, "admin@northwind-msp.example", "wrong")
    expect(page.get_by_role("alert")).to_contain_text("Email or password is incorrect.")
    assert_fits(page, width)


@pytest.mark.parametrize("width", WIDTHS)
def test_no_access_page(checked_page, organisation, width):
    page = at(checked_page, width)
    sign_in(page, "external_guest@northwind-msp.example", PASSWORD)
    expect(page.get_by_role("heading", name="No access")).to_be_visible()
    assert_fits(page, width)


@pytest.mark.parametrize("width", WIDTHS)
def test_portal_error_page(checked_page, context, organisation, stripe_server, width):
    page = at(checked_page, width)
    sign_in(page, "billing@northwind-msp.example", PASSWORD)
    stripe_server.fault(method="POST", path="^/v1/billing_portal/sessions$", status=500, times=1)
    context.add_init_script(AXE_FILE.read_text(encoding="utf-8"))  # the new tab's too
    with context.expect_page() as opened:
        page.get_by_role("button", name="Open Billing Portal").click()
    portal = at(opened.value, width)
    expect(portal.get_by_role("heading", name="Stripe had a problem")).to_be_visible()
    assert_fits(portal, width)


@pytest.mark.parametrize("width", WIDTHS)
def test_report_progress_page(checked_page, usage, width):
    page = at(checked_page, width)
    sign_in(page, "full_member@northwind-msp.example", PASSWORD)
    page.goto("/settings/usage/report?month=2026-02")
    expect(page.get_by_role("heading", level=1)).to_have_text("Usage report for February 2026")
    expect(page.locator("#report-progress-text")).to_be_visible()
    # Without JavaScript this page reloads itself every two seconds until the file is ready
    # (tests/browser/test_report_jobs.py), which axe reports as a timed refresh.
    assert_fits(page, width, allowed=("meta-refresh",))


@pytest.mark.parametrize("width", WIDTHS)
def test_invoices_page(checked_page, usage, width):
    page = at(checked_page, width)
    sign_in(page, "admin@northwind-msp.example", PASSWORD)
    page.goto("/settings/usage/invoices")
    expect(page.get_by_role("heading", level=1)).to_have_text("Settings · Usage · Invoices")
    expect(page.locator("#invoices-table tbody tr")).to_have_count(3)
    assert_fits(page, width)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_first_screen_shows_the_headline(page, usage, width):
    page = at(page, width)
    height = page.viewport_size["height"]
    sign_in(page, "admin@northwind-msp.example", PASSWORD)
    expect(page.locator("#usage-month-heading")).to_have_text(Month.of(today_utc()).label)
    # What is owed comes first (the past-due banner); the headline follows it at once.
    banner = page.locator("#amount-due-banner")
    expect(banner).to_be_visible()
    height += banner.bounding_box()["height"]
    for figure in ("headline-cost", "headline-projection", "headline-change", "headline-users"):
        box = page.locator(f"#{figure}").bounding_box()
        assert box is not None and box["y"] + box["height"] <= height, figure
    box = page.locator("#unit-price").bounding_box()
    assert box["y"] + box["height"] <= height
