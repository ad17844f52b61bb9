"""Signing in and out, redirects after sign-in, cookies and CSRF."""

import pytest

from tests.factories import CSRF_INPUT, PASSWORD

pytestmark = pytest.mark.stripe_customer


def _login_token(client) -> str:
    return CSRF_INPUT.search(client.get("/login").get_data(as_text=True)).group(1)


def test_login_page_has_email_and_password_fields(client):
    page = client.get("/login")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'name="email"' in html and 'name="password"' in html and 'name="csrf_token"' in html


def test_sign_in_lands_on_usage_page(client, auth, organisation):
    response = auth.login("admin@northwind-msp.example")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/settings/usage")
    assert client.get("/settings/usage").status_code == 200


def test_email_is_matched_ignoring_case_and_spaces(client, auth, organisation):
    response = auth.login("  Admin@Northwind-MSP.example ")
    assert response.status_code == 303


def test_wrong_password_is_refused_and_keeps_the_email(client, auth, organisation):
    response = auth.login("admin@northwind-msp.example", "not the password")
    html = response.get_data(as_text=True)
    assert response.status_code == 401
    assert "Email or password is incorrect." in html
    assert 'value="admin@northwind-msp.example"' in html
    assert client.get("/settings/usage").status_code == 302


def test_unknown_member_gets_the_same_answer(auth, organisation):
    response = auth.login("nobody@northwind-msp.example")
    assert response.status_code == 401
    assert "Email or password is incorrect." in response.get_data(as_text=True)


def test_missing_fields_are_a_bad_request(client, organisation):
    token = _login_token(client)
    response = client.post("/login", data={"email": "", "password": "", "csrf_token": token})
    assert response.status_code == 400
    assert "Enter your email address." in response.get_data(as_text=True)


def test_sign_in_without_csrf_token_is_refused(client, organisation):
    client.get("/login")
    response = client.post(
        "/login", data={"email": "admin@northwind-msp.example", "password": PASSWORD}
    )
    assert response.status_code == 400
    assert client.get("/settings/usage").status_code == 302


def test_anonymous_visitor_is_sent_to_login_with_next(client, app):
    response = client.get("/settings/usage?month=2026-02")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/settings/usage?month%3D2026-02"


def test_anonymous_htmx_request_is_told_to_redirect(client, app):
    response = client.get("/settings/usage/billing-email", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login?next=")


def test_next_is_followed_after_sign_in(client, auth, organisation):
    token = _login_token(client)
    response = client.post(
        "/login?next=/settings/usage/billing-email",
        data={"email": "admin@northwind-msp.example", "password": PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/settings/usage/billing-email"


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "http:/evil.example",
        "javascript:alert(1)",
        "settings/usage",
    ],
)
def test_next_never_leaves_the_site(client, organisation, next_url):
    client.get("/login")
    token = _login_token(client)
    response = client.post(
        "/login",
        query_string={"next": next_url},
        data={"email": "admin@northwind-msp.example", "password": PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/settings/usage"


def test_session_cookie_is_httponly_and_lax(client, auth, organisation):
    response = auth.login("admin@northwind-msp.example")
    cookie = next(
        value for value in response.headers.getlist("Set-Cookie") if value.startswith("session=")
    )
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # development and tests are plain HTTP


def test_sign_out_needs_a_post_with_csrf(client, auth, organisation):
    auth.as_role("admin")
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    assert client.get("/settings/usage").status_code == 200
    response = auth.post("/logout")
    assert response.status_code == 303
    assert client.get("/settings/usage").status_code == 302


def test_sign_in_is_rate_limited(client, organisation):
    for _ in range(10):
        token = _login_token(client)
        client.post(
            "/login",
            data={"email": "admin@northwind-msp.example", "password": "x", "csrf_token": token},
        )
    token = _login_token(client)
    response = client.post(
        "/login",
        data={"email": "admin@northwind-msp.example", "password": PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 429
    assert "Too many attempts" in response.get_data(as_text=True)
    assert client.get("/settings/usage").status_code == 302
