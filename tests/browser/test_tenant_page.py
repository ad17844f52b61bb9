"""The tenant page in Chromium: opened from the Usage page, its month changed with htmx and
without JavaScript, its users' CSV downloaded; axe-clean, and no sideways scroll on a phone."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from billing_app.extensions import db
from billing_app.figures.months import Month, today_utc
from billing_app.models import Organisation
from tests import rebilling
from tests.browser.conftest import AXE_FILE, axe_violations, sign_in
from tests.factories import PASSWORD

pytestmark = pytest.mark.browser


@pytest.fixture
def contoso(app, organisation) -> str:
    """The proration fixtures in Northwind; Contoso's tenant id."""
    with app.app_context():
        org = db.session.scalar(select(Organisation).filter_by(slug="northwind-msp"))
        tenants = rebilling.build(org)
        return tenants["contoso"].external_id


def test_open_a_tenant_change_its_month_and_download_its_users(page, live_server, contoso):
    sign_in(page, "full_member@northwind-msp.example", PASSWORD)
    page.get_by_label("Month", exact=True).select_option("2026-04")
    expect(page.locator("#usage-month-heading")).to_have_text("April 2026")

    page.get_by_role("link", name="Contoso Ltd").click()
    expect(page).to_have_url(f"{live_server.url}/settings/usage/tenants/{contoso}?month=2026-04")
    expect(page.get_by_role("heading", level=1)).to_have_text("Contoso Ltd")
    expect(page.locator("#tenant-month-heading")).to_have_text("April 2026")
    page.wait_for_function("typeof window.htmx === 'object'")
    page.evaluate("window.stillTheSamePage = true")

    page.get_by_label("Month", exact=True).select_option("2026-06")
    expect(page.locator("#tenant-month-heading")).to_have_text("June 2026")
    expect(page).to_have_url(f"{live_server.url}/settings/usage/tenants/{contoso}?month=2026-06")
    assert page.evaluate("window.stillTheSamePage") is True
    expect(page.locator("#tenant-added")).to_contain_text("Back Again")
    expect(page.locator("#tenant-removed")).to_contain_text("Alan Turing")
    back = page.get_by_role("link", name="← Back to Usage, June 2026")
    expect(back).to_have_attribute("href", "/settings/usage?month=2026-06")

    link = page.get_by_role("link", name="Users of this tenant, June 2026 (.csv)")
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename == "usage-northwind-msp-2026-06-users.csv"
    with open(download.path(), encoding="utf-8", newline="") as file:
        found = list(csv.DictReader(file))
    assert {row["tenant_id"] for row in found} == {contoso}
    assert {row["month"] for row in found} == {"2026-06"}
    shown = page.locator("#tenant-users-table tbody tr").count()
    assert len(found) == shown
    total = page.locator("#tenant-total").inner_text()
    assert total == f"${sum(Decimal(row['prorated_cost']) for row in found):.2f}"

    back.click()
    expect(page).to_have_url(f"{live_server.url}/settings/usage?month=2026-06")
    expect(page.locator("#usage-month-heading")).to_have_text("June 2026")
    errors = [m.text for m in page.console_messages if m.type == "error"]
    assert errors == []


def test_the_month_picker_works_without_javascript(browser, live_server, contoso):
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        page = context.new_page()
        sign_in(page, "admin@northwind-msp.example", PASSWORD)
        page.goto(f"/settings/usage/tenants/{contoso}?month=2026-04")
        page.get_by_label("Month", exact=True).select_option("2026-02")
        page.get_by_role("button", name="Show").click()
        expect(page).to_have_url(
            f"{live_server.url}/settings/usage/tenants/{contoso}?month=2026-02"
        )
        expect(page.locator("#tenant-month-heading")).to_have_text("February 2026")
    finally:
        context.close()


@pytest.mark.parametrize("width", [360, 390, 1280])
def test_axe_clean_and_no_sideways_scroll(page, contoso, width, tmp_path):
    page.add_init_script(AXE_FILE.read_text(encoding="utf-8"))
    page.set_viewport_size({"width": width, "height": 844 if width < 1000 else 800})
    sign_in(page, "billing@northwind-msp.example", PASSWORD)
    page.goto(f"/settings/usage/tenants/{contoso}?month=2026-04")
    expect(page.locator("#tenant-users-table")).to_be_visible()
    assert axe_violations(page) == []
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    box = page.locator(".table-scroll").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width


def test_the_current_month_and_a_month_with_no_users(page, contoso, app):
    sign_in(page, "admin@northwind-msp.example", PASSWORD)
    with app.app_context():
        org = db.session.scalar(select(Organisation).filter_by(slug="northwind-msp"))
        empty = next(t.external_id for t in org.tenants if t.name == "Empty Tenant")
    page.goto(f"/settings/usage/tenants/{empty}")
    current = Month.of(today_utc())
    expect(page.locator("#tenant-month-heading")).to_have_text(current.label)
    expect(page.locator("#tenant-no-users")).to_be_visible()
    page.goto(f"/settings/usage/tenants/{empty}?month=2026-05")
    expect(page.locator("#tenant-not-onboarded")).to_be_visible()
    csv_text = page.request.get(f"/settings/usage/export/users.csv?month=2026-05&tenant={empty}")
    assert list(csv.reader(io.StringIO(csv_text.text(), newline=""))) == [
        csv_text.text().split("\r\n")[0].split(",")
    ]
