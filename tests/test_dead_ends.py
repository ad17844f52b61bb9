"""No dead ends: `/` leads to the Usage page, the 403 page offers sign-out and never links back
to itself, and the login page says why the visitor is there."""

from __future__ import annotations

import re

import pytest
from markupsafe import escape

from billing_app.auth.views import SENT_TO_SIGN_IN, SIGNED_OUT
from tests.factories import CSRF_INPUT

pytestmark = pytest.mark.stripe_customer

REASON = str(escape(SENT_TO_SIGN_IN))
HREF = re.compile(r'<a\b[^>]*\bhref="([^"]*)"')
SIGN_OUT_FORM = re.compile(
    r'<form method="post" action="/logout">\s*'
    r'<input type="hidden" name="csrf_token" value="([^"]+)">\s*'
    r'<button type="submit" class="primary">Sign out and use another account</button>'
)


def _main(html: str) -> str:
    """The page's content, without the top bar (which has its own sign-out button)."""
    return html[html.index('<main id="main"') :]


@pytest.mark.parametrize("role", ["admin", "full_member", "billing"])
def test_front_door_leads_members_to_the_usage_page(auth, organisation, role):
    auth.as_role(role)
    response = auth.client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/settings/usage"
    assert auth.client.get("/", follow_redirects=True).request.path == "/settings/usage"


def test_front_door_sends_anonymous_visitors_on_to_sign_in_and_says_why(client, organisation):
    first = client.get("/")
    assert (first.status_code, first.headers["Location"]) == (302, "/settings/usage")
    second = client.get(first.headers["Location"])
    assert (second.status_code, second.headers["Location"]) == (302, "/login?next=/settings/usage")
    login = client.get(second.headers["Location"])
    assert login.status_code == 200
    assert REASON in _main(login.get_data(as_text=True))


def test_login_page_says_why_when_a_page_sent_the_visitor(client, organisation):
    response = client.get("/settings/usage/report?month=2026-03", follow_redirects=True)
    assert response.request.path == "/login"
    html = _main(response.get_data(as_text=True))
    assert f'<p class="notice" role="status">{REASON}</p>' in html
    assert SIGNED_OUT not in html


def test_htmx_request_is_sent_to_a_login_page_that_says_why(client, organisation):
    response = client.get("/settings/usage/summary?month=2026-03", headers={"HX-Request": "true"})
    assert response.status_code == 401
    login = client.get(response.headers["HX-Redirect"])
    assert REASON in login.get_data(as_text=True)


def test_login_page_visited_directly_gives_no_reason(client):
    html = _main(client.get("/login").get_data(as_text=True))
    assert REASON not in html
    assert SIGNED_OUT not in html
    assert 'class="notice"' not in html


def test_login_page_says_the_member_was_signed_out_once(auth, organisation):
    auth.as_role("admin")
    response = auth.post("/logout")
    assert (response.status_code, response.headers["Location"]) == (303, "/login")
    html = _main(auth.client.get("/login").get_data(as_text=True))
    assert SIGNED_OUT in html
    assert REASON not in html
    assert SIGNED_OUT not in auth.client.get("/login").get_data(as_text=True)


def test_guest_403_offers_a_working_sign_out_and_no_link_back_to_itself(auth, organisation):
    auth.as_role("external_guest")
    response = auth.client.get("/settings/usage")
    assert response.status_code == 403
    html = _main(response.get_data(as_text=True))
    assert "external_guest@northwind-msp.example" in html
    hrefs = HREF.findall(html)
    assert not [href for href in hrefs if href.startswith("/settings/") or href == "/"], hrefs
    [token] = SIGN_OUT_FORM.findall(html)
    signed_out = auth.client.post("/logout", data={"csrf_token": token})
    assert (signed_out.status_code, signed_out.headers["Location"]) == (303, "/login")
    assert SIGNED_OUT in auth.client.get("/login").get_data(as_text=True)
    again = auth.client.get("/settings/usage")
    assert (again.status_code, again.headers["Location"]) == (302, "/login?next=/settings/usage")


def test_sign_out_from_the_403_page_needs_its_csrf_token(auth, organisation):
    auth.as_role("external_guest")
    assert SIGN_OUT_FORM.search(auth.client.get("/settings/usage").get_data(as_text=True))
    assert auth.client.post("/logout", data={}).status_code == 400
    assert auth.client.get("/settings/usage").status_code == 403  # still signed in


def test_guest_404_is_no_dead_end_either(auth, organisation):
    auth.as_role("external_guest")
    response = auth.client.get("/no/such/page")
    assert response.status_code == 404
    html = _main(response.get_data(as_text=True))
    assert SIGN_OUT_FORM.search(html)
    assert "/settings/usage" not in HREF.findall(html)


def test_member_403_links_to_the_usage_page_and_offers_sign_out(auth, organisation):
    auth.as_role("full_member")
    response = auth.client.get("/settings/usage/billing-email/edit")
    assert response.status_code == 403
    html = _main(response.get_data(as_text=True))
    assert HREF.findall(html) == ["/settings/usage"]
    assert SIGN_OUT_FORM.search(html)


def test_member_404_links_back_without_a_sign_out_prompt(auth, organisation):
    auth.as_role("billing")
    html = _main(auth.client.get("/no/such/page").get_data(as_text=True))
    assert HREF.findall(html) == ["/settings/usage"]
    assert not SIGN_OUT_FORM.search(html)
    assert CSRF_INPUT.search(html) is None


def test_anonymous_404_offers_sign_in(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert HREF.findall(_main(response.get_data(as_text=True))) == ["/login"]
