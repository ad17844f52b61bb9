"""Issue 18 in Chromium at 360, 390 and 1280 px: the open change history fits its card, the
tenant table on a phone says that it scrolls and keeps its rows short, the tenant page's table
title shows whole, editing the billing email leaves the portal button where it was with one
primary button, the portal's way in is said beside it, and the new states (a month not
available, an unknown tenant, a report being prepared without JavaScript) are axe-clean."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from billing_app.billing_email.history import record_change
from billing_app.extensions import db
from billing_app.models import Organisation, Tenant
from tests.browser.conftest import axe_violations, sideways_scroll, sign_in
from tests.factories import ALWAYS, PASSWORD, add_tenant

pytestmark = [pytest.mark.browser, pytest.mark.stripe_customer]

PHONES = [360, 390]
WIDTHS = [*PHONES, 1280]
# A valid address of 106 characters: a 60-character local part at a 45-character domain.
LONG_ADDRESS = "a" * 60 + "@" + "b" * 37 + ".example"


@pytest.fixture
def northwind(app, organisation) -> str:
    """Northwind with tenants of long names, one onboarded in February, and two changes of
    its billing email (one to a 106-character address): the first tenant's external id."""
    assert len(LONG_ADDRESS) == 106
    with app.app_context():
        org = db.session.scalar(select(Organisation).filter_by(slug="northwind-msp"))
        add_tenant(org, "Bluestone Property Management", users=(("Ada", ALWAYS), ("Bo", ALWAYS)))
        add_tenant(
            org, "Carver Whitlock Solicitors", onboarded_on="2026-02-10", users=(("Cy", ALWAYS),)
        )
        record_change(
            org, "accounts@northwind.example", old="billing@northwind.example", source="app"
        )
        record_change(org, LONG_ADDRESS, old="accounts@northwind.example", source="app")
        record_change(org, "billing@northwind.example", old=LONG_ADDRESS, source="app")
        db.session.commit()
        return db.session.scalar(
            select(Tenant.external_id).filter_by(name="Bluestone Property Management")
        )


def at(page: Page, width: int) -> Page:
    page.set_viewport_size({"width": width, "height": 800 if width > 500 else 844})
    return page


def assert_fits(page: Page) -> None:
    assert sideways_scroll(page) == []
    assert axe_violations(page) == []


@pytest.mark.parametrize("width", WIDTHS)
def test_the_open_change_history_fits_its_card(checked_page, northwind, width):
    page = at(checked_page, width)
    sign_in(page, "admin@northwind-msp.example", PASSWORD)
    page.get_by_text("Change history").click()
    rows = page.locator("#billing-email-history tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(1)).to_contain_text(LONG_ADDRESS)
    assert_fits(page)
    card = page.locator("section.billing").bounding_box()
    history = page.locator("#billing-email-history").bounding_box()
    assert history["x"] + history["width"] <= card["x"] + card["width"]


@pytest.mark.parametrize("width", PHONES)
def test_the_tenant_table_on_a_phone_says_it_scrolls_and_keeps_rows_short(
    checked_page, northwind, width
):
    page = at(checked_page, width)
    sign_in(page, "admin@northwind-msp.example", PASSWORD)
    scroll = page.locator("#tenant-table .table-scroll")
    assert scroll.evaluate("e => e.scrollWidth > e.clientWidth")
    expect(page.locator("#tenant-table-scroll-hint")).to_be_visible()
    expect(page.locator("#tenant-table-scroll-hint")).to_contain_text("scroll the table sideways")
    # The Microsoft tenant id takes one line, however narrow the name column.
    for tenant_id in page.locator("#usage-table tbody .tenant-id").all():
        line = tenant_id.evaluate("e => parseFloat(getComputedStyle(e).lineHeight)")
        assert tenant_id.bounding_box()["height"] < 1.5 * line
    row = page.locator("#usage-table tbody tr", has_text="Carver Whitlock").bounding_box()
    assert row["height"] < 90, row
    assert_fits(page)


@pytest.mark.parametrize("width", PHONES)
def test_a_paused_badge_on_a_phone_wraps_inside_the_names_column(
    app, checked_page, northwind, width
):
    with app.app_context():
        org = db.session.scalar(select(Organisation).filter_by(slug="northwind-msp"))
        add_tenant(
            org,
            "St Aidan's Primary School",
            pauses=(("2026-07-25", "2026-09-01"),),
            users=(("Di", ALWAYS),),
        )
        db.session.commit()
    page = at(checked_page, width)
    sign_in(page, "admin@northwind-msp.example", PASSWORD)
    page.goto("/settings/usage?month=2026-07")
    row = page.locator("#usage-table tbody tr", has_text="St Aidan's")
    badge = row.locator(".badge-paused")
    expect(badge).to_have_text("Paused 25 Jul 2026 \u2013 31 Aug 2026")
    name_cell, cost_cell = row.locator("th").bounding_box(), row.locator("td").first.bounding_box()
    box = badge.bounding_box()
    assert box["x"] + box["width"] <= name_cell["x"] + name_cell["width"] <= cost_cell["x"]
    assert_fits(page)


def test_the_tenant_table_needs_no_scroll_hint_on_a_wide_screen(page, northwind):
    page = at(page, 1280)
    sign_in(page, "admin@northwind-msp.example", PASSWORD)
    expect(page.locator("#usage-table")).to_be_visible()
    expect(page.locator("#tenant-table-scroll-hint")).to_be_hidden()
    scroll = page.locator("#tenant-table .table-scroll")
    assert scroll.evaluate("e => e.scrollWidth <= e.clientWidth")


@pytest.mark.parametrize("width", WIDTHS)
def test_the_tenant_pages_table_title_shows_whole(checked_page, northwind, width):
    page = at(checked_page, width)
    sign_in(page, "admin@northwind-msp.example", PASSWORD)
    page.goto(f"/settings/usage/tenants/{northwind}?month=2026-02")
    title = page.locator("#tenant-users-caption")
    expect(title).to_have_text("Billable users, February 2026")
    box = title.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width
    assert title.evaluate("e => e.scrollWidth <= e.clientWidth")
    expect(page.get_by_role("region", name="Billable users, February 2026")).to_be_visible()
    assert_fits(page)


@pytest.mark.parametrize("width", WIDTHS)
def test_editing_the_email_keeps_the_portal_button_and_one_primary_button(
    checked_page, northwind, width
):
    page = at(checked_page, width)
    sign_in(page, "admin@northwind-msp.example", PASSWORD)
    page.wait_for_function("typeof window.htmx === 'object'")
    portal = page.locator("#portal-button")
    before = portal.bounding_box()
    page.get_by_role("button", name="Edit billing email").click()
    expect(page.get_by_role("textbox", name="Billing email")).to_be_focused()
    primary = page.locator("section.billing button.primary:visible")
    expect(primary).to_have_count(1)
    expect(primary).to_have_text("Save", use_inner_text=True)
    after = portal.bounding_box()
    if width == 1280:
        # Beside the form, where it was.
        assert abs(after["x"] - before["x"]) < 1 and abs(after["y"] - before["y"]) < 1
    assert_fits(page)


@pytest.mark.parametrize(
    ("role", "label"), [("admin", "Email a portal login link"), ("billing", "Open Billing Portal")]
)
def test_the_portal_way_in_is_said_beside_its_button(checked_page, northwind, role, label):
    page = at(checked_page, 390)
    sign_in(page, f"{role}@northwind-msp.example", PASSWORD)
    button = page.get_by_role("button", name=label)
    expect(button).to_be_visible()
    expect(page.locator("#portal-flow")).to_be_visible()
    assert button.evaluate("b => !b.classList.contains('primary')")
    assert_fits(page)


@pytest.mark.parametrize("width", WIDTHS)
def test_a_month_not_available_shows_an_empty_picker_and_the_way_to_the_latest(
    checked_page, northwind, width
):
    page = at(checked_page, width)
    sign_in(page, "admin@northwind-msp.example", PASSWORD)
    page.goto("/settings/usage?month=2099-01")
    expect(page.locator("#usage-problem")).to_be_visible()
    expect(page.get_by_label("Month", exact=True)).to_have_value("")
    assert page.get_by_label("Month", exact=True).evaluate("s => s.selectedOptions[0].text") == (
        "Choose a month"
    )
    assert_fits(page)
    page.locator("#usage-latest").click()
    expect(page).to_have_url("/settings/usage")
    expect(page.locator("#usage-headline")).to_be_visible()


@pytest.mark.parametrize("width", WIDTHS)
def test_an_unknown_tenant_has_a_page_with_a_way_back(checked_page, northwind, width):
    page = at(checked_page, width)
    sign_in(page, "admin@northwind-msp.example", PASSWORD)
    response = page.goto("/settings/usage/tenants/no-such-tenant")
    assert response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Tenant not found")
    assert_fits(page)
    page.get_by_role("link", name="Back to Settings · Usage").last.click()
    expect(page).to_have_url("/settings/usage")


@pytest.mark.parametrize("width", [390, 1280])
def test_a_report_being_prepared_without_javascript_is_a_status(
    browser, live_server, northwind, width
):
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        page = at(context.new_page(), width)
        sign_in(page, "full_member@northwind-msp.example", PASSWORD)
        page.goto("/settings/usage/report?month=2026-02")
        preparing = page.locator("#download-report")
        expect(preparing).to_have_text("Preparing report for February 2026…")
        assert preparing.evaluate("e => e.tagName") == "SPAN"
        style = preparing.evaluate(
            "e => { const s = getComputedStyle(e);"
            " return [s.backgroundColor, s.borderTopStyle, s.cursor]; }"
        )
        assert style == ["rgba(0, 0, 0, 0)", "none", "progress"]
        assert sideways_scroll(page) == []
    finally:
        context.close()
