"""The permission matrix of DESIGN.md, cell by cell, on every Usage route."""

from __future__ import annotations

import pytest

from billing_app.permissions import MATRIX, Action, Role, role_may
from tests.factories import ROLES

pytestmark = pytest.mark.stripe_customer

ALLOWED, REFUSED = "allowed", "refused"

# Expected answers per route and role, written out from DESIGN.md rather than derived
# from the code under test. `allowed` means "not refused": the route may still answer
# 400 for an empty form, but never 403.
ROUTES: dict[tuple[str, str], dict[str, str]] = {
    ("GET", "/"): {
        "admin": ALLOWED, "full_member": ALLOWED, "billing": ALLOWED, "external_guest": ALLOWED,
    },
    ("GET", "/settings/usage"): {
        "admin": ALLOWED, "full_member": ALLOWED, "billing": ALLOWED, "external_guest": REFUSED,
    },
    ("GET", "/settings/usage/billing-email"): {
        "admin": ALLOWED, "full_member": ALLOWED, "billing": ALLOWED, "external_guest": REFUSED,
    },
    ("GET", "/settings/usage/billing-email/edit"): {
        "admin": ALLOWED, "full_member": REFUSED, "billing": REFUSED, "external_guest": REFUSED,
    },
    ("POST", "/settings/usage/billing-email"): {
        "admin": ALLOWED, "full_member": REFUSED, "billing": REFUSED, "external_guest": REFUSED,
    },
    ("POST", "/settings/usage/billing-portal"): {
        "admin": ALLOWED, "full_member": REFUSED, "billing": ALLOWED, "external_guest": REFUSED,
    },
    ("GET", "/settings/usage/summary"): {
        "admin": ALLOWED, "full_member": ALLOWED, "billing": ALLOWED, "external_guest": REFUSED,
    },
    ("GET", "/settings/usage/report"): {
        "admin": ALLOWED, "full_member": ALLOWED, "billing": ALLOWED, "external_guest": REFUSED,
    },
    ("GET", "/settings/usage/invoices"): {
        "admin": ALLOWED, "full_member": REFUSED, "billing": ALLOWED, "external_guest": REFUSED,
    },
    ("GET", "/settings/usage/invoices/<invoice_id>"): {
        "admin": ALLOWED, "full_member": REFUSED, "billing": ALLOWED, "external_guest": REFUSED,
    },
    ("GET", "/settings/usage/tenants/<tenant_id>"): {
        "admin": ALLOWED, "full_member": ALLOWED, "billing": ALLOWED, "external_guest": REFUSED,
    },
    ("GET", "/settings/usage/export/tenants.csv"): {
        "admin": ALLOWED, "full_member": ALLOWED, "billing": ALLOWED, "external_guest": REFUSED,
    },
    ("GET", "/settings/usage/export/users.csv"): {
        "admin": ALLOWED, "full_member": ALLOWED, "billing": ALLOWED, "external_guest": REFUSED,
    },
    ("GET", "/settings/usage/notifications"): {
        "admin": ALLOWED, "full_member": REFUSED, "billing": ALLOWED, "external_guest": REFUSED,
    },
    ("POST", "/settings/usage/notifications/contacts"): {
        "admin": ALLOWED, "full_member": REFUSED, "billing": ALLOWED, "external_guest": REFUSED,
    },
    ("POST", "/settings/usage/notifications/contacts/<int:contact_id>/resend"): {
        "admin": ALLOWED, "full_member": REFUSED, "billing": ALLOWED, "external_guest": REFUSED,
    },
    ("POST", "/settings/usage/notifications/contacts/<int:contact_id>/remove"): {
        "admin": ALLOWED, "full_member": REFUSED, "billing": ALLOWED, "external_guest": REFUSED,
    },
    ("POST", "/settings/usage/notifications/alerts"): {
        "admin": ALLOWED, "full_member": REFUSED, "billing": ALLOWED, "external_guest": REFUSED,
    },
    ("GET", "/settings/usage/api-tokens"): {
        "admin": ALLOWED, "full_member": REFUSED, "billing": REFUSED, "external_guest": REFUSED,
    },
    ("POST", "/settings/usage/api-tokens"): {
        "admin": ALLOWED, "full_member": REFUSED, "billing": REFUSED, "external_guest": REFUSED,
    },
    ("POST", "/settings/usage/api-tokens/<int:token_id>/revoke"): {
        "admin": ALLOWED, "full_member": REFUSED, "billing": REFUSED, "external_guest": REFUSED,
    },
}  # fmt: skip

# The links mailed to billing contacts: public, guarded by their token (a confirmation token
# whose hash is stored, or a signed unsubscribe token), and opened without signing in. Tested
# in tests/test_notifications.py.
PUBLIC_BY_TOKEN = {
    ("GET", "/settings/usage/notifications/confirm/<int:contact_id>/<token>"),
    ("POST", "/settings/usage/notifications/confirm/<int:contact_id>/<token>"),
    ("GET", "/settings/usage/notifications/unsubscribe/<token>"),
    ("POST", "/settings/usage/notifications/unsubscribe/<token>"),
}

# The usage API: signed in by bearer tokens only, never by a member's session (tests/test_api.py
# holds its refusals); every route but the OpenAPI document answers a session alone with 401.
API_ROUTES = {
    ("GET", "/api/v1/months"),
    ("GET", "/api/v1/months/<month>/tenants"),
    ("GET", "/api/v1/months/<month>/users"),
    ("GET", "/api/v1/invoices"),
}

# Routes outside the Usage area, open to anyone (each guards itself: CSRF, signatures).
PUBLIC_ROUTES = {
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("GET", "/healthz"),
    ("POST", "/webhooks/stripe"),
    ("GET", "/static/<path:filename>"),
    ("GET", "/api/v1/openapi.json"),
}
REFUSED_TO_GUESTS = sorted(
    route for route, cells in ROUTES.items() if cells["external_guest"] == REFUSED
)

MATRIX_CELLS = {
    ("view_usage", "admin"): True,
    ("view_usage", "full_member"): True,
    ("view_usage", "billing"): True,
    ("view_usage", "external_guest"): False,
    ("change_billing_email", "admin"): True,
    ("change_billing_email", "full_member"): False,
    ("change_billing_email", "billing"): False,
    ("change_billing_email", "external_guest"): False,
    ("open_billing_portal", "admin"): True,
    ("open_billing_portal", "full_member"): False,
    ("open_billing_portal", "billing"): True,
    ("open_billing_portal", "external_guest"): False,
    ("download_report", "admin"): True,
    ("download_report", "full_member"): True,
    ("download_report", "billing"): True,
    ("download_report", "external_guest"): False,
    ("see_invoices", "admin"): True,
    ("see_invoices", "full_member"): False,
    ("see_invoices", "billing"): True,
    ("see_invoices", "external_guest"): False,
    ("manage_contacts", "admin"): True,
    ("manage_contacts", "full_member"): False,
    ("manage_contacts", "billing"): True,
    ("manage_contacts", "external_guest"): False,
    ("manage_api_tokens", "admin"): True,
    ("manage_api_tokens", "full_member"): False,
    ("manage_api_tokens", "billing"): False,
    ("manage_api_tokens", "external_guest"): False,
}


@pytest.mark.parametrize(("action", "role"), sorted(MATRIX_CELLS))
def test_matrix_cell(action, role):
    assert role_may(role, action) is MATRIX_CELLS[(action, role)]


def test_matrix_covers_every_action_and_role():
    assert {(a.value, r.value) for a in Action for r in Role} == set(MATRIX_CELLS)
    assert set(MATRIX) == set(Action)


def _url(path: str) -> str:
    """A route's rule as a URL a request can use (converters other than strings filled in)."""
    return path.replace("<int:contact_id>", "1").replace("<int:token_id>", "1")


def _request(auth, method: str, path: str):
    path = _url(path)
    if method == "GET":
        return auth.client.get(path)
    return auth.post(path)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path"), sorted(ROUTES))
def test_route_answers_each_role(auth, organisation, method, path, role):
    auth.as_role(role)
    response = _request(auth, method, path)
    if ROUTES[(method, path)][role] == REFUSED:
        assert response.status_code == 403
    else:
        assert response.status_code != 403
        assert response.status_code < 500


@pytest.mark.parametrize(("method", "path"), sorted(ROUTES))
def test_route_sends_anonymous_visitors_to_login(client, organisation, method, path):
    path = _url(path)
    response = client.get(path) if method == "GET" else client.post(path)
    if method == "GET":
        if path == "/":
            # The front door leads to the Usage page, which sends them on.
            assert response.status_code == 302
            assert response.headers["Location"] == "/settings/usage"
            response = client.get(response.headers["Location"])
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login")
    else:
        # A POST without a session has no valid CSRF token either: refused before anything.
        assert response.status_code in (302, 400)


@pytest.mark.parametrize(("method", "path"), REFUSED_TO_GUESTS)
def test_htmx_refusal_is_a_status_not_a_redirect(auth, organisation, method, path):
    auth.as_role("external_guest")
    path = _url(path)
    headers = {"HX-Request": "true"}
    path = path.replace("<int:token_id>", "1")
    if method == "GET":
        response = auth.client.get(path, headers=headers)
    else:
        response = auth.post(path, htmx=True)
    assert response.status_code == 403
    assert "You do not have access" in response.get_data(as_text=True)
    assert "<html" not in response.get_data(as_text=True)


def test_every_usage_route_is_guarded_and_listed(app):
    """A new Usage route without a permission, or without a row above, fails here."""
    guarded = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/settings/"):
            continue
        if {
            (method, rule.rule) for method in rule.methods - {"HEAD", "OPTIONS"}
        } <= PUBLIC_BY_TOKEN:
            continue
        view = app.view_functions[rule.endpoint]
        assert hasattr(view, "required_action"), f"{rule.rule} is not guarded by the matrix"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            guarded.add((method, rule.rule))
    assert guarded == {route for route in ROUTES if route[1].startswith("/settings/")}


def test_every_route_is_in_the_table_or_public(app):
    """A new route anywhere, without a row above, fails here."""
    routes = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert routes - PUBLIC_ROUTES - PUBLIC_BY_TOKEN - API_ROUTES == set(ROUTES)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path"), sorted(API_ROUTES))
def test_api_routes_refuse_every_members_session(auth, organisation, method, path, role):
    auth.as_role(role)
    response = auth.client.get(path.replace("<month>", "2026-03"))
    assert response.status_code == 401
    assert response.get_json()["error"]["type"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_external_guest_gets_a_friendly_403_page(auth, organisation):
    auth.as_role("external_guest")
    response = auth.client.get("/settings/usage")
    html = response.get_data(as_text=True)
    assert response.status_code == 403
    assert "You do not have access to this page" in html
    assert "<html" in html and "Sign out" in html
    assert "billing@northwind.example" not in html


@pytest.mark.parametrize("role", ["admin", "full_member", "billing"])
def test_usage_page_shows_the_billing_email(auth, organisation, role):
    auth.as_role(role)
    html = auth.client.get("/settings/usage").get_data(as_text=True)
    assert "billing@northwind.example" in html
    assert "works only with exactly this address" in html


def test_healthz_answers_when_the_database_does(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_healthz_answers_503_when_the_database_does_not(tmp_path, stripe_server):
    from billing_app import create_app

    app = create_app(
        {"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/missing/dir/x.db"}
    )
    assert app.test_client().get("/healthz").status_code == 503


@pytest.mark.parametrize(("method", "path"), sorted(PUBLIC_BY_TOKEN))
def test_mailed_links_answer_without_signing_in_and_refuse_a_bad_token(
    client, organisation, method, path
):
    url = path.replace("<int:contact_id>", "1").replace("<token>", "not-a-token")
    response = client.get(url) if method == "GET" else client.post(url)
    assert response.status_code in (400, 404)  # a bad token (or no CSRF token), not a sign-in
    assert "Location" not in response.headers
