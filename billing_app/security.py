"""Security headers on every response.

- Content-Security-Policy: scripts from this app and the pinned htmx file only, styles from
  this app only, no inline code, no framing, forms posting to this app (and to Stripe, where
  the Billing Portal button's 303 lands: Chromium checks `form-action` on redirects too).
- Referrer-Policy, X-Content-Type-Options, X-Frame-Options; HSTS over HTTPS.
- `Cache-Control: no-store` on everything but static files, so pages of signed-in members
  stay out of browser caches and the back/forward cache; a response that says itself it is
  `private` keeps its own (the API's answers with an ETag: `private, no-cache`, kept by the
  client alone and asked about again each time).

And before any view: a request whose body is larger than `MAX_CONTENT_LENGTH` is refused
with 413 before any of it is read, whichever route it is sent to.
"""

from __future__ import annotations

import functools
import io
from urllib.parse import urlsplit

from flask import Flask, Response, abort, current_app, request

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
    if request.endpoint != "static" and not response.cache_control.private:
        response.cache_control.no_store = True
        response.cache_control.no_cache = None
        response.cache_control.public = None
        response.cache_control.max_age = None
    return response


def _refuse_large_bodies() -> None:
    """413 for a body over the limit: at once when its declared length says so, before any
    of it is read; for a chunked body (no declared length), as soon as the limit is passed,
    the part read so far kept for the view."""
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit is None:
        return
    length = request.content_length
    if length is not None:
        if length > limit:
            abort(413)
        return
    if "chunked" not in request.headers.get("Transfer-Encoding", "").lower():
        return
    environ = request.environ
    body = environ["wsgi.input"].read(limit + 1)
    if len(body) > limit:
        abort(413)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))


def init_app(app: Flask) -> None:
    # First after the request id, before CSRF and rate limits read the form.
    app.before_request_funcs.setdefault(None, []).insert(1, _refuse_large_bodies)
    app.after_request(_add_headers)
