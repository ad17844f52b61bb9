"""A report being built, in Chromium: the Download control shows its progress in place and
the file arrives when the worker is done; without JavaScript, a page that refreshes itself."""

from __future__ import annotations

import openpyxl
import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from billing_app.extensions import db
from billing_app.models import Organisation
from tests.browser.conftest import AXE_FILE, axe_violations, sign_in
from tests.factories import ALWAYS, PASSWORD, add_tenant

pytestmark = pytest.mark.browser

LABEL = "Download report for January 2026 (.xlsx)"


@pytest.fixture
def northwind(app, organisation) -> Organisation:
    with app.app_context():
        org = db.session.scalar(select(Organisation).filter_by(slug="northwind-msp"))
        add_tenant(org, "Contoso Ltd", users=(("Grace Hopper", ALWAYS),))
        db.session.expunge_all()
    return organisation


def test_the_download_control_shows_the_build_in_place(
    page, northwind, live_server, worker_factory, tmp_path
):
    page.add_init_script(AXE_FILE.read_text(encoding="utf-8"))
    sign_in(page, "full_member@northwind-msp.example", PASSWORD)
    page.goto(f"{live_server.url}/settings/usage?month=2026-01")
    page.evaluate("window.stillTheSamePage = true")

    page.get_by_role("link", name=LABEL).click()
    control = page.locator("#report-download")
    expect(control).to_have_attribute("aria-busy", "true")
    expect(page.locator("#download-report")).to_have_text("Preparing report for January 2026…")
    expect(page.locator("#report-progress-text")).to_have_text("Waiting for the report to start")
    assert axe_violations(page) == []

    with page.expect_download(timeout=60_000) as info:
        worker_factory()
    download = info.value
    assert download.suggested_filename == "usage-northwind-msp-2026-01.xlsx"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert openpyxl.load_workbook(saved)["Summary"]["B3"].value == "January 2026"
    expect(page.locator("#report-ready")).to_have_text(
        "The report is ready: its download has started."
    )
    expect(page.get_by_role("link", name=LABEL)).to_be_visible()
    expect(control).not_to_have_attribute("aria-busy", "true")
    assert page.evaluate("window.stillTheSamePage") is True
    assert page.url == f"{live_server.url}/settings/usage?month=2026-01"
    errors = [m.text for m in page.console_messages if m.type == "error"]
    assert errors == []


def test_without_javascript_a_progress_page_refreshes_until_the_file_arrives(
    browser, live_server, northwind, worker_factory
):
    context = browser.new_context(
        base_url=live_server.url, java_script_enabled=False, accept_downloads=True
    )
    try:
        page = context.new_page()
        sign_in(page, "admin@northwind-msp.example", PASSWORD)
        page.goto("/settings/usage?month=2026-01")
        page.get_by_role("link", name=LABEL).click()
        expect(page).to_have_url(f"{live_server.url}/settings/usage/report?month=2026-01")
        expect(page.get_by_role("heading", level=1)).to_have_text("Usage report for January 2026")
        expect(page.locator("#report-progress-text")).to_have_text(
            "Waiting for the report to start"
        )
        expect(page.locator('meta[http-equiv="refresh"]')).to_have_attribute("content", "2")

        with page.expect_download(timeout=60_000) as info:
            worker_factory()
        assert info.value.suggested_filename == "usage-northwind-msp-2026-01.xlsx"
        expect(page.get_by_role("link", name="Back to Usage for January 2026")).to_be_visible()
    finally:
        context.close()
