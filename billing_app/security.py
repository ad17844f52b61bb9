"""Security headers on every response.

- Content-Security-Policy: scripts from this app and the pinned htmx file only, styles from
  this app only, no inline code, no framing, forms posting to this app (and to Stripe, where
  the Billing Portal button's 303 lands: Chromium checks `form-action` on redirects too).
- Referrer-Policy, X-Content-Type-Options, X-Frame-Options; HSTS over HTTPS.
- `Cache-Control: no-store` on everything but static files, so pages of signed-in members
  stay out of browser caches and the back/forward cache.
"""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request

STRIPE_PORTAL_ORIGIN = "https://billing.stripe.com"
HSTS = "max-age=31536000; includeSubDomains"
REFERRER_POLICY = "strict-origin-when-cross-origin"


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


@functools.lru_cache(maxsize=16)
def content_security_policy(
    htmx_url: str, stripe_api_base: str | None, portal_login_url: str | None
) -> str:
    """The policy for these settings: the exact htmx URL and the Stripe origins forms reach."""
    form_targets = ["'self'", STRIPE_PORTAL_ORIGIN]
    for origin in (_origin(stripe_api_base), _origin(portal_login_url)):
        if origin and origin not in form_targets:
            form_targets.append(origin)
    directives = {
        "default-src": "'self'",
        "script-src": f"'self' {htmx_url}",
        "style-src": "'self'",
        "img-src": "'self' data:",
        "font-src": "'self'",
        "connect-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'none'",
        "frame-ancestors": "'none'",
        "form-action": " ".join(form_targets),
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def _add_headers(response: Response) -> Response:
    config = current_app.config
    headers = response.headers
    headers.setdefault(
        "Content-Security-Policy",
        content_security_policy(
            config["HTMX_URL"],
            config.get("STRIPE_API_BASE"),
            config.get("STRIPE_PORTAL_LOGIN_URL"),
        ),
    )
    headers.setdefault("Referrer-Policy", REFERRER_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", HSTS)
    if request.endpoint != "static":
        response.cache_control.no_store = True
        response.cache_control.no_cache = None
        response.cache_control.public = None
        response.cache_control.max_age = None
    return response


def init_app(app: Flask) -> None:
    app.after_request(_add_headers)
