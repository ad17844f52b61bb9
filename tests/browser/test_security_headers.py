"""The Usage page and the portal button under the app's Content-Security-Policy, in Chromium."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from billing_app import config
from tests.browser.conftest import sign_in
from tests.factories import PASSWORD

pytestmark = pytest.mark.stripe_customer

CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (event) => {
  window.__cspViolations.push(event.violatedDirective + ' ' + event.blockedURI);
});
"""


def _csp_errors(page) -> list[str]:
    return [
        message.text
        for message in page.console_messages
        if message.type == "error" and "Content Security Policy" in message.text
    ]


@pytest.mark.browser
@pytest.mark.parametrize("role", ["admin", "full_member", "billing"])
def test_usage_page_runs_under_the_csp(page, organisation, role):
    page.add_init_script(CSP_RECORDER)
    sign_in(page, f"{role}@northwind-msp.example", PASSWORD)
    expect(page).to_have_url("/settings/usage")
    page.wait_for_load_state("load")
    assert page.evaluate("typeof window.htmx") == "object"
    assert page.evaluate("window.htmx.version") == config.HTMX_VERSION
    assert page.evaluate("window.__cspViolations") == []
    assert _csp_errors(page) == []


@pytest.mark.browser
@pytest.mark.parametrize(("role", "landing"), [("admin", "/p/login/"), ("billing", "/p/session/")])
def test_portal_button_redirects_to_stripe_under_the_csp(
    page, organisation, stripe_server, role, landing
):
    """The portal form posts to Petra, which 303s to Stripe: form-action must allow that."""
    page.add_init_script(CSP_RECORDER)
    sign_in(page, f"{role}@northwind-msp.example", PASSWORD)
    expect(page).to_have_url("/settings/usage")
    with page.context.expect_page() as new_tab:
        page.locator("#portal-button").click()
    portal = new_tab.value
    portal.wait_for_load_state("load")
    assert portal.url.startswith(stripe_server.api_base + landing)
    assert page.evaluate("window.__cspViolations") == []
    assert _csp_errors(page) == []
