"""Busy states in Chromium, with the server's answer held back: a month on its way marks its
section busy and holds its downloads, so nothing fetches the month leaving the screen; a
download says it is being prepared until its file arrives; Save says it is saving and drops
the old error; a month that cannot be fetched puts the picker back and says so."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from billing_app.extensions import db
from billing_app.figures.months import Month, today_utc
from billing_app.models import Organisation
from tests.browser.conftest import Held, reads_held, sign_in
from tests.factories import ALWAYS, PASSWORD, add_tenant, unique_email

pytestmark = [pytest.mark.browser, pytest.mark.stripe_customer]

DOWNLOADS = ("#download-report", "#export-tenants-csv", "#export-users-csv")


@pytest.fixture
def northwind(app, organisation) -> Organisation:
    """Northwind with two tenants billed since before January 2026."""
    with app.app_context():
        org = db.session.scalar(select(Organisation).filter_by(slug="northwind-msp"))
        add_tenant(org, "Contoso Ltd", users=(("Grace Hopper", ALWAYS), ("Alan Turing", ALWAYS)))
        add_tenant(org, "Fabrikam", users=(("Ada", ALWAYS),))
        db.session.expunge_all()
    return organisation


def sign_in_as(page: Page, role: str) -> None:
    sign_in(page, f"{role}@northwind-msp.example", PASSWORD)
    expect(page.locator("#usage-month")).to_be_visible()


def requests_to(page: Page, path: str) -> list[str]:
    seen: list[str] = []
    page.on("request", lambda request: path in request.url and seen.append(request.url))
    return seen


def test_a_month_on_its_way_marks_its_section_busy_and_holds_its_downloads(page, northwind):
    current = Month.of(today_utc())
    sign_in_as(page, "full_member")
    region = page.locator("#usage-month")
    expect(region).not_to_have_attribute("aria-busy", "true")
    for control in DOWNLOADS:
        expect(page.locator(control)).not_to_have_attribute("aria-disabled", "true")
    held = Held(page, "**/settings/usage/summary?*")
    reports, exports = requests_to(page, "/report"), requests_to(page, "/export/")

    page.get_by_label("Month", exact=True).select_option("2026-01")
    held.wait_for(1)
    expect(region).to_have_attribute("aria-busy", "true")
    expect(page.locator("#usage-month-heading")).to_have_text(current.label)
    expect(page.locator(".usage-head .month-loading")).to_be_visible()
    for control in DOWNLOADS:
        link = page.locator(control)
        expect(link).to_have_attribute("aria-disabled", "true")
        expect(link).to_have_attribute("tabindex", "-1")
        # A click (even one a script forces) fetches nothing of the month leaving the screen.
        link.click(force=True)
    page.wait_for_timeout(300)
    assert reports == [] and exports == []

    held.release()
    expect(page.locator("#usage-month-heading")).to_have_text("January 2026")
    expect(region).not_to_have_attribute("aria-busy", "true")
    expect(page.locator(".usage-head .month-loading")).to_be_hidden()
    download = page.get_by_role("link", name="Download report for January 2026 (.xlsx)")
    expect(download).not_to_have_attribute("aria-disabled", "true")
    expect(page.locator("#export-users-csv")).to_have_attribute(
        "href", "/settings/usage/export/users.csv?month=2026-01"
    )


def test_a_second_month_chosen_meanwhile_keeps_the_section_busy_until_it_arrives(page, northwind):
    sign_in_as(page, "full_member")
    region = page.locator("#usage-month")
    held = Held(page, "**/settings/usage/summary?*")
    picker = page.get_by_label("Month", exact=True)
    picker.select_option("2026-01")
    held.wait_for(1)
    picker.select_option("2026-02")
    held.wait_for(2)
    expect(region).to_have_attribute("aria-busy", "true")
    held.release()
    expect(page.locator("#usage-month-heading")).to_have_text("February 2026")
    expect(region).not_to_have_attribute("aria-busy", "true")
    expect(page.locator("#download-report")).not_to_have_attribute("aria-disabled", "true")


def test_download_says_the_report_is_being_prepared_at_once(page, northwind):
    sign_in_as(page, "full_member")
    page.get_by_label("Month", exact=True).select_option("2026-01")
    link = page.get_by_role("link", name="Download report for January 2026 (.xlsx)")
    expect(link).to_be_visible()
    held = Held(page, "**/settings/usage/report?*")
    link.click()
    held.wait_for(1)
    expect(page.locator("#download-report")).to_have_text(
        "Preparing report for January 2026…", use_inner_text=True
    )
    held.release()
    # The server queues the build: the control shows its progress in place.
    expect(page.locator("#report-progress-text")).to_be_visible()


@pytest.mark.parametrize(
    ("control", "busy_text"),
    [("#export-tenants-csv", "Preparing tenants…"), ("#export-users-csv", "Preparing users…")],
)
def test_an_export_says_it_is_being_prepared_until_its_file_arrives(
    app, page, northwind, control, busy_text
):
    sign_in_as(page, "admin")
    link = page.locator(control)
    idle_text, href = link.inner_text(), link.get_attribute("href")
    with page.expect_download() as info, reads_held(app):
        link.click()
        expect(link).to_have_text(busy_text, use_inner_text=True)
        expect(link).to_have_attribute("aria-disabled", "true")
        expect(page.locator("#export-status")).to_contain_text("Preparing the")
        page.wait_for_timeout(1000)  # still preparing while the server has not answered
        expect(link).to_have_text(busy_text, use_inner_text=True)
    assert re.search(r"[?&]download_token=[0-9a-f]{32}$", info.value.url)
    assert info.value.suggested_filename.endswith(".csv")
    expect(link).to_have_text(idle_text, use_inner_text=True)
    expect(link).not_to_have_attribute("aria-disabled", "true")
    expect(link).to_have_attribute("href", href)
    expect(page.locator("#export-status")).to_have_text("")
    assert "petra_download_" not in page.evaluate("document.cookie")


def test_save_says_it_is_saving_and_drops_the_old_error(page, northwind, stripe_server):
    sign_in_as(page, "admin")
    page.get_by_role("button", name="Edit billing email").click()
    field = page.locator("#billing-email-input")
    field.fill("accounts@northwind")
    page.get_by_role("button", name="Save", exact=True).click()
    error = page.locator("#billing-email-message")
    expect(error).to_contain_text("needs a dot")
    expect(field).to_have_attribute("aria-invalid", "true")

    new = unique_email()
    field.fill(new)
    held = Held(page, "**/settings/usage/billing-email")
    page.get_by_role("button", name="Save", exact=True).click()
    held.wait_for(1)
    expect(error).to_have_count(0)
    expect(field).not_to_have_attribute("aria-invalid", "true")
    expect(page.locator("#billing-email button.primary")).to_have_text(
        "Saving…", use_inner_text=True
    )
    expect(page.locator("#billing-email button.primary")).to_be_disabled()
    held.release()
    expect(page.locator("#billing-email-notice")).to_contain_text(new)


def test_a_month_that_cannot_be_fetched_puts_the_picker_back_and_says_so(page, northwind):
    current = Month.of(today_utc())
    sign_in_as(page, "full_member")
    page.route("**/settings/usage/summary?*", lambda route: route.abort("connectionfailed"))
    picker = page.get_by_label("Month", exact=True)
    picker.select_option("2026-01")
    problem = page.locator("#usage-heading ~ form [data-month-problem]")
    expect(problem).to_be_visible()
    expect(problem).to_have_text(
        "January 2026 could not be loaded: check the connection and choose it again."
    )
    expect(picker).to_have_value(str(current))
    expect(page.locator("#usage-month")).not_to_have_attribute("aria-busy", "true")
    expect(page.locator("#download-report")).not_to_have_attribute("aria-disabled", "true")

    page.unroute("**/settings/usage/summary?*")
    picker.select_option("2026-01")
    expect(page.locator("#usage-month-heading")).to_have_text("January 2026")
    expect(problem).to_be_hidden()


def test_the_tenant_page_month_is_busy_while_it_loads(page, northwind):
    sign_in_as(page, "full_member")
    page.get_by_role("link", name="Contoso Ltd").click()
    region = page.locator("#tenant-month")
    expect(region).to_be_visible()
    page.wait_for_load_state()  # htmx has taken the picker over
    held = Held(page, "**/settings/usage/tenants/*")
    page.get_by_label("Month", exact=True).select_option("2026-01")
    held.wait_for(1)
    expect(region).to_have_attribute("aria-busy", "true")
    expect(page.locator("#tenant-users-csv")).to_have_attribute("aria-disabled", "true")
    held.release()
    expect(page.locator("#tenant-month-heading")).to_have_text("January 2026")
    expect(region).not_to_have_attribute("aria-busy", "true")
    expect(page.locator("#tenant-users-csv")).not_to_have_attribute("aria-disabled", "true")


def test_the_show_button_is_only_for_browsers_without_javascript(
    page, browser, live_server, northwind
):
    sign_in_as(page, "full_member")
    expect(page.locator(".month-picker button[type=submit]")).to_be_hidden()
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        plain = context.new_page()
        sign_in(plain, "full_member@northwind-msp.example", PASSWORD)
        expect(plain.get_by_role("button", name="Show")).to_be_visible()
    finally:
        context.close()
