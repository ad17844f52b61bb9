"""Security headers: CSP, referrer, nosniff, framing, HSTS over HTTPS, caching and Vary."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from billing_app import config, create_app
from billing_app.security import content_security_policy

pytestmark = pytest.mark.stripe_customer

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def _csp(response) -> dict[str, list[str]]:
    policy = response.headers["Content-Security-Policy"]
    directives = {}
    for part in policy.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def assert_security_headers(response) -> None:
    csp = _csp(response)
    assert csp["script-src"] == ["'self'", config.HTMX_URL]
    assert csp["style-src"] == ["'self'"]
    assert csp["default-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["object-src"] == ["'none'"]
    assert csp["form-action"][0] == "'self'"
    policy = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response.headers["Referrer-Policy"] in ("strict-origin-when-cross-origin", "no-referrer")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_usage_page(client, auth, organisation):
    auth.as_role("admin")
    response = client.get("/settings/usage")
    assert response.status_code == 200
    assert_security_headers(response)
    assert response.headers["Cache-Control"] == "no-store"
    assert "HX-Request" in response.vary
    assert "Strict-Transport-Security" not in response.headers


def test_usage_fragment(client, auth, organisation):
    auth.as_role("full_member")
    response = client.get("/settings/usage/billing-email", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert_security_headers(response)
    assert response.headers["Cache-Control"] == "no-store"
    assert "HX-Request" in response.vary


def test_anonymous_usage_request_varies_on_htmx(client, organisation):
    page = client.get("/settings/usage")
    fragment = client.get("/settings/usage", headers={"HX-Request": "true"})
    assert page.status_code == 302 and fragment.status_code == 401
    for response in (page, fragment):
        assert_security_headers(response)
        assert "HX-Request" in response.vary


def test_login_page(client):
    response = client.get("/login")
    assert response.status_code == 200
    assert_security_headers(response)
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("role", "path", "status"),
    [
        (None, "/no-such-page", 404),
        ("external_guest", "/settings/usage", 403),
        ("external_guest", "/settings/usage/billing-email", 403),
        ("admin", "/logout", 405),
    ],
)
def test_error_pages(client, auth, organisation, role, path, status):
    if role:
        auth.as_role(role)
    response = client.get(path)
    assert response.status_code == status
    assert_security_headers(response)
    assert response.headers["Cache-Control"] == "no-store"


def test_csrf_failure_page(client, organisation):
    client.get("/login")
    response = client.post("/login", data={"email": "a@b.example", "password": "x"})
    assert response.status_code == 400
    assert_security_headers(response)


def test_static_files_get_the_headers_but_stay_cacheable(client):
    response = client.get("/static/css/app.css")
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" in response.headers
    assert "no-store" not in response.headers.get("Cache-Control", "")


def test_hsts_only_over_https(app, organisation):
    plain = app.test_client().get("/login")
    secure = app.test_client().get("/login", base_url="https://localhost")
    assert "Strict-Transport-Security" not in plain.headers
    hsts = secure.headers["Strict-Transport-Security"]
    assert re.fullmatch(r"max-age=(\d+); includeSubDomains", hsts)
    assert int(hsts.split("=")[1].split(";")[0]) >= 31536000


def test_hsts_behind_a_trusted_proxy(app):
    """With TRUSTED_PROXIES set, ProxyFix believes the proxy's X-Forwarded-Proto."""
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    untrusted = app.test_client().get("/login", headers=forwarded)
    assert "Strict-Transport-Security" not in untrusted.headers

    proxied = create_app({**app.config, "TRUSTED_PROXIES": 1})
    trusted = proxied.test_client().get("/login", headers=forwarded)
    assert "Strict-Transport-Security" in trusted.headers


def test_trusted_proxy_gives_the_client_address(app):
    proxied = create_app({**app.config, "TRUSTED_PROXIES": 1})
    seen = {}

    @proxied.get("/_whoami")
    def whoami():
        from flask import request

        seen["addr"] = request.remote_addr
        return "ok"

    proxied.test_client().get(
        "/_whoami",
        headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9"},
        environ_base={"REMOTE_ADDR": "10.0.0.2"},
    )
    assert seen["addr"] == "203.0.113.9"


def test_form_action_allows_the_stripe_origins_the_portal_redirects_to():
    policy = content_security_policy(
        config.HTMX_URL, "http://127.0.0.1:8420", "https://billing.stripe.com/p/login/abc"
    )
    form_action = next(p for p in policy.split("; ") if p.startswith("form-action "))
    assert form_action.split()[1:] == [
        "'self'",
        "https://billing.stripe.com",
        "http://127.0.0.1:8420",
    ]
    production = content_security_policy(config.HTMX_URL, None, None).split("; ")
    assert "form-action 'self' https://billing.stripe.com" in production


def test_templates_have_no_inline_styles_or_scripts():
    """The CSP forbids inline code, so the templates must not need any."""
    inline = re.compile(
        r"\sstyle\s*=|<script(?![^>]*\ssrc=)[^>]*>|\son[a-z]+\s*=|\shx-on|javascript:|<style",
        re.IGNORECASE,
    )
    offenders = [
        f"{path.name}: {match.group(0).strip()}"
        for path in sorted(TEMPLATES.rglob("*.html"))
        for match in inline.finditer(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_htmx_indicator_styles_are_off():
    base = (TEMPLATES / "base.html").read_text(encoding="utf-8")
    assert '"includeIndicatorStyles": false' in base
    assert '"historyCacheSize": 0' in base
