"""An admin edits the billing email in place in Chromium, with htmx and without JavaScript."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from billing_app.extensions import db
from billing_app.models import AuditEvent, Organisation
from tests.browser.conftest import AXE_FILE, axe_violations, sign_in
from tests.factories import PASSWORD, unique_email

pytestmark = [pytest.mark.browser, pytest.mark.stripe_customer]

OLD = "billing@northwind.example"
ADMIN = "admin@northwind-msp.example"


def stored(app) -> tuple[str, int]:
    with app.app_context():
        email = db.session.scalar(
            select(Organisation.billing_email).where(Organisation.slug == "northwind-msp")
        )
        audits = len(db.session.scalars(select(AuditEvent)).all())
        return email, audits


def test_admin_edits_sees_an_error_fixes_it_saves_and_cancels_with_escape(
    page, app, organisation, stripe_client
):
    sign_in(page, ADMIN, PASSWORD)
    section = page.locator("#billing-email")
    edit = page.get_by_role("button", name="Edit billing email")
    field = page.get_by_role("textbox", name="Billing email")

    edit.click()
    expect(field).to_be_focused()
    expect(field).to_have_value(OLD)
    field.fill("Ada <ada@northwind.example>")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(section.get_by_role("alert")).to_contain_text("without a name or angle brackets")
    expect(field).to_have_value("Ada <ada@northwind.example>")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_be_focused()
    assert stored(app) == (OLD, 0)

    new = unique_email()
    field.fill(new)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(section.get_by_role("status")).to_have_text(
        f"Saved. Stripe now sends invoices to {new}."
    )
    expect(page.locator("#billing-email-value")).to_have_text(new)
    expect(field).to_have_count(0)
    expect(page.locator("#billing-email-history tbody tr")).to_have_count(1)
    assert page.url.endswith("/settings/usage")
    assert stored(app) == (new, 1)
    assert stripe_client.v1.customers.retrieve(organisation.stripe_customer_id).email == new

    edit.click()
    expect(field).to_be_focused()
    field.fill("never-saved@northwind.example")
    field.press("Escape")
    expect(field).to_have_count(0)
    expect(page.locator("#billing-email-value")).to_have_text(new)
    expect(edit).to_be_focused()

    edit.click()
    field.fill("also-never-saved@northwind.example")
    page.get_by_role("button", name="Cancel").click()
    expect(field).to_have_count(0)
    expect(page.locator("#billing-email-value")).to_have_text(new)
    assert stored(app) == (new, 1)
    # Chromium reports the deliberate 400 answer; anything else (CSP, script errors) fails.
    errors = [m.text for m in page.console_messages if m.type == "error"]
    assert [e for e in errors if "status of 400" not in e] == []


def test_stripe_failure_is_shown_in_place_and_save_again_works(
    page, app, organisation, stripe_client, stripe_server
):
    sign_in(page, ADMIN, PASSWORD)
    page.get_by_role("button", name="Edit billing email").click()
    field = page.get_by_role("textbox", name="Billing email")
    new = unique_email()
    field.fill(new)
    stripe_server.fault(method="POST", path="^/v1/customers/", status=429, times=1)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#billing-email").get_by_role("alert")).to_contain_text("Stripe is busy")
    expect(field).to_have_value(new)
    assert stored(app) == (OLD, 0)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#billing-email-value")).to_have_text(new)
    assert stored(app) == (new, 1)


def test_without_javascript_the_same_edit_works_as_plain_forms(
    browser, live_server, app, organisation
):
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        page = context.new_page()
        sign_in(page, ADMIN, PASSWORD)
        page.get_by_role("button", name="Edit billing email").click()
        expect(page).to_have_url(re.compile(r"/settings/usage/billing-email/edit\??$"))
        field = page.get_by_role("textbox", name="Billing email")
        field.fill("billing@northwind")
        page.get_by_role("button", name="Save", exact=True).click()
        expect(page.get_by_role("alert")).to_contain_text("The domain after the @ needs a dot")
        expect(field).to_have_value("billing@northwind")

        new = unique_email()
        field.fill(new)
        page.get_by_role("button", name="Save", exact=True).click()
        expect(page).to_have_url("/settings/usage")
        expect(page.get_by_text(f"Saved. Stripe now sends invoices to {new}.")).to_be_visible()
        expect(page.locator("#billing-email-value")).to_have_text(new)
        assert stored(app) == (new, 1)

        page.get_by_role("button", name="Edit billing email").click()
        page.get_by_role("button", name="Cancel").click()
        expect(page).to_have_url(re.compile(r"/settings/usage\??$"))
        expect(page.locator("#billing-email-value")).to_have_text(new)
    finally:
        context.close()


def test_after_a_timeout_the_form_waits_for_stripe_and_shows_the_change_when_it_lands(
    page, app, organisation, stripe_client, stripe_server
):
    page.add_init_script(AXE_FILE.read_text(encoding="utf-8"))
    sign_in(page, ADMIN, PASSWORD)
    path = f"^/v1/customers/{organisation.stripe_customer_id}$"
    stripe_server.fault(method="POST", path=path, delay=5, times=1)
    page.get_by_role("button", name="Edit billing email").click()
    new = unique_email()
    page.get_by_role("textbox", name="Billing email").fill(new)
    page.get_by_role("button", name="Save", exact=True).click()

    problem = page.locator("#billing-email-problem")
    expect(problem).to_contain_text("Not confirmed yet. Stripe did not answer in time.")
    expect(problem).to_contain_text("The change may still reach Stripe")
    expect(problem).not_to_contain_text("not changed")
    expect(page.locator("#billing-email-pending")).to_contain_text(
        f"Waiting for Stripe to confirm {new}"
    )
    assert axe_violations(page) == []
    assert stored(app) == (OLD, 0)

    # Stripe makes the change late; the form sees it land without another save.
    expect(page.locator("#billing-email-notice")).to_have_text(
        f"Saved. Stripe now sends invoices to {new}.", timeout=15_000
    )
    expect(page.locator("#billing-email-value")).to_have_text(new)
    expect(page.locator("#billing-email-pending")).to_have_count(0)
    assert stored(app) == (new, 1)
    assert stripe_client.v1.customers.retrieve(organisation.stripe_customer_id).email == new
    assert axe_violations(page) == []
