"""The month picker and the report download in Chromium, with htmx and without JavaScript."""

from __future__ import annotations

import re

import openpyxl
import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from billing_app.extensions import db
from billing_app.figures.months import Month, today_utc
from billing_app.models import Organisation
from tests.browser.conftest import AXE_FILE, axe_violations, sign_in
from tests.factories import ALWAYS, PASSWORD, add_tenant

pytestmark = pytest.mark.browser


@pytest.fixture
def northwind(app, organisation) -> Organisation:
    """Northwind with a tenant onboarded mid-January 2026, so January differs from later
    months."""
    with app.app_context():
        org = db.session.scalar(select(Organisation).filter_by(slug="northwind-msp"))
        add_tenant(org, "Contoso Ltd", users=(("Grace Hopper", ALWAYS), ("Alan Turing", ALWAYS)))
        add_tenant(org, "Fabrikam", onboarded_on="2026-01-20", users=(("Ada", ALWAYS),))
        db.session.expunge_all()
    return organisation


def wait_for_the_build(page, url: str) -> None:
    """Wait for the build of the report the page asked for, however long the worker takes: the
    report answers 202 while it is queued or being built, and the file (200) once it is."""
    while (response := page.request.get(url, max_redirects=0)).status == 202:
        page.wait_for_timeout(250)
    assert response.status == 200, response.status


def test_choosing_a_month_updates_the_summary_and_the_download(
    app, page, northwind, live_server, tmp_path, report_worker
):
    current = Month.of(today_utc())
    sign_in(page, "full_member@northwind-msp.example", PASSWORD)
    expect(page).to_have_url(f"{live_server.url}/settings/usage")
    heading = page.locator("#usage-month-heading")
    total = page.locator("#usage-table tfoot td").first
    expect(heading).to_have_text(current.label)
    expect(page.get_by_label("Month", exact=True)).to_have_value(str(current))
    current_total = total.inner_text()
    page.evaluate("window.stillTheSamePage = true")

    page.get_by_label("Month", exact=True).select_option("2026-01")

    expect(heading).to_have_text("January 2026")
    expect(page).to_have_url(f"{live_server.url}/settings/usage?month=2026-01")
    expect(total).not_to_have_text(current_total)
    expect(page.locator("#usage-table")).to_contain_text("Onboarded 20 Jan")
    assert page.evaluate("window.stillTheSamePage") is True
    download_link = page.get_by_role("link", name="Download report for January 2026 (.xlsx)")
    expect(download_link).to_have_attribute("href", "/settings/usage/report?month=2026-01")

    downloads = []
    page.on("download", lambda started: downloads.append(started))
    download_link.click()
    wait_for_the_build(page, "/settings/usage/report?month=2026-01")
    expect(page.locator("#report-ready")).to_be_visible()
    download = downloads[0] if downloads else page.wait_for_event("download")
    assert download.suggested_filename == "usage-northwind-msp-2026-01.xlsx"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    summary = openpyxl.load_workbook(saved, data_only=True)["Summary"]
    assert summary["B3"].value == "January 2026"
    [total_row] = [row for row in summary.iter_rows(values_only=True) if row[0] == "Total"]
    assert f"${total_row[3]:,.2f}" == total.inner_text()
    assert report_worker.temporary_files_left() == []

    page.reload()
    expect(heading).to_have_text("January 2026")
    expect(page.get_by_label("Month", exact=True)).to_have_value("2026-01")
    page.go_back()
    expect(page).to_have_url(f"{live_server.url}/settings/usage")
    expect(heading).to_have_text(current.label)
    errors = [m.text for m in page.console_messages if m.type == "error"]
    assert errors == []


def test_the_picker_works_without_javascript(browser, live_server, northwind):
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        page = context.new_page()
        sign_in(page, "admin@northwind-msp.example", PASSWORD)
        page.get_by_label("Month", exact=True).select_option("2026-01")
        expect(page).to_have_url(re.compile(r"/settings/usage$"))
        page.get_by_role("button", name="Show").click()
        expect(page).to_have_url(f"{live_server.url}/settings/usage?month=2026-01")
        expect(page.locator("#usage-month-heading")).to_have_text("January 2026")
        expect(
            page.get_by_role("link", name="Download report for January 2026 (.xlsx)")
        ).to_be_visible()
    finally:
        context.close()


def test_the_summary_with_its_chart_passes_axe(page, northwind):
    page.add_init_script(AXE_FILE.read_text(encoding="utf-8"))
    sign_in(page, "billing@northwind-msp.example", PASSWORD)
    page.get_by_label("Month", exact=True).select_option("2026-01")
    expect(page.locator("#usage-month-heading")).to_have_text("January 2026")
    expect(page.locator("#usage-chart svg[role=group]")).to_be_visible()
    expect(page.locator("#usage-chart-data")).to_be_attached()
    assert axe_violations(page) == []
