"""The billing contacts and alerts section in Chromium, at 1280 and 390 px: adding a contact
with htmx (and a refusal shown beside the field), the alert settings, and the mail table, with
no sideways scroll and (on the phone) no axe violations."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from billing_app.extensions import db
from billing_app.models import Member, Organisation
from billing_app.notifications import contacts
from billing_app.notifications.outbox import queue_message
from tests.browser.conftest import axe_violations, sideways_scroll, sign_in
from tests.factories import PASSWORD

pytestmark = pytest.mark.browser

LONG_ADDRESS = "accounts-payable.department.of.northwind@subsidiary.northwind-example.com"


@pytest.fixture
def section(app, organisation) -> None:
    with app.app_context():
        org = db.session.scalar(select(Organisation))
        member = db.session.scalar(select(Member).where(Member.role == "admin"))
        assert contacts.add(org, member, LONG_ADDRESS).ok
        row = queue_message(
            organisation_id=org.id,
            kind="statement",
            recipient="someone.with.a.very.long.address@accounts.northwind-example.com",
            subject="Invoice NW-2026-0011 for November 2026 — Northwind Traders Regional Care",
            message=b"x",
            key="browser-failed",
        )
        row.state = "failed"
        row.last_error = "550 5.1.1 The email account that you tried to reach does not exist"
        db.session.commit()


@pytest.mark.parametrize("width", [390, 1280])
def test_the_section_fits_and_adds_a_contact_with_htmx(checked_page: Page, section, width):
    page = checked_page
    page.set_viewport_size({"width": width, "height": 844 if width < 500 else 800})
    sign_in(page, "admin@northwind-msp.example", PASSWORD)
    expect(page.locator("#notifications")).to_be_visible()  # on the Usage page
    assert not (found := sideways_scroll(page)), "\n".join(found)
    page.goto("/settings/usage/notifications")
    assert not (found := sideways_scroll(page)), "\n".join(found)
    field = page.get_by_label("Add a billing contact")
    field.fill("not an address")
    page.get_by_role("button", name="Add contact").click()
    expect(page.locator("#contact-error")).to_contain_text("cannot contain spaces")
    expect(page.get_by_label("Add a billing contact")).to_have_value("not an address")
    assert not (found := sideways_scroll(page)), "\n".join(found)
    if width < 500:
        assert axe_violations(page) == []
    page.get_by_label("Add a billing contact").fill("ops@northwind.example")
    page.get_by_role("button", name="Add contact").click()
    expect(page.locator("#notifications-notice")).to_contain_text("ops@northwind.example was added")
    expect(page.locator('li[data-contact="ops@northwind.example"]')).to_contain_text("Waiting")
    assert page.url.endswith("/settings/usage/notifications")  # swapped in place, no navigation
    page.get_by_label("Monthly budget (USD)").fill("2500")
    page.get_by_role("button", name="Save alerts").click()
    expect(page.locator("#notifications-notice")).to_contain_text("saved")
    assert not (found := sideways_scroll(page)), "\n".join(found)
    if width < 500:
        assert axe_violations(page) == []
