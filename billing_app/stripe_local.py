"""The local Stripe server used in development and tests.

It wraps ``localstripe`` (a stateful Stripe emulator) and adds what Petra needs from Stripe on
the same port: billing portal sessions, a portal page, the portal login page, idempotency keys,
switchable faults and a request log. State lives in memory only, so instances run side by side.

Run it with ``python -m billing_app.stripe_local --host 127.0.0.1 --port 8420``, wait for one
with ``python -m billing_app.stripe_local --wait http://127.0.0.1:8420 [--webhook URL]``, and
start one from tests and scripts with :class:`LocalStripe`.

Test-only endpoints (no API key needed):

- ``POST /_faults`` adds a fault rule (JSON: ``method``, ``path`` regex, ``status``, ``error``,
  ``delay``, ``times``, ``should_retry``, ``retry_after``); ``GET`` lists, ``DELETE`` clears.
  A rule with a ``delay`` and no ``status`` is a slow Stripe: the request is taken at once (a
  request with the same idempotency key meanwhile gets Stripe's 409) and answered late.
- ``GET /_requests`` lists the requests received (newest last); ``DELETE`` clears.
- ``DELETE /_config/data`` empties the store; ``POST /_config/webhooks/{id}`` registers a webhook.
- ``GET /_health`` answers ``ok``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import html
import json
import logging
import os
import re
import secrets
import socket
import string
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    from aiohttp import web
except ImportError:  # the LocalStripe helper needs only the standard library
    web = None

ls_resources: Any = None
ls_server: Any = None
UserError: Any = None

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8420
API_KEY = "sk_test_local"
PORTAL_LOGIN_CONFIG = "test_local"
PORTAL_SESSION_TTL = 300.0
DEFAULT_PORTAL_CONFIGURATION = "bpc_local_default"
IDEMPOTENCY_TTL = 24 * 3600
IDEMPOTENCY_MAX_KEYS = 10_000
REQUEST_LOG_SIZE = 10_000
PORTAL_TITLE = "Petra test billing portal"

_SESSION_PARAMS = frozenset(
    {
        "after_expiration",
        "configuration",
        "customer",
        "customer_account",
        "expand",
        "flow_data",
        "locale",
        "on_behalf_of",
        "return_url",
    }
)
_FLOW_TYPES = (
    "customer_update",
    "payment_method_update",
    "subscription_cancel",
    "subscription_pause",
    "subscription_update",
    "subscription_update_confirm",
)
_PUBLIC_KEY_PATHS = (
    r"^/v1/tokens$",
    r"^/v1/sources$",
    r"^/v1/payment_intents/\w+/_authenticate\b",
    r"^/v1/setup_intents/\w+/confirm$",
    r"^/v1/setup_intents/\w+/cancel$",
)
_FAULT_KEYS = frozenset(
    {"method", "path", "status", "error", "delay", "times", "should_retry", "retry_after"}
)
_FAULT_ERRORS = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", None, "Invalid API Key provided."),
    402: ("card_error", "card_declined", "Your card was declined."),
    403: ("invalid_request_error", None, "The provided key does not have access."),
    404: ("invalid_request_error", "resource_missing", "No such resource."),
    409: ("invalid_request_error", "lock_timeout", "This object cannot be accessed right now."),
    429: (
        "invalid_request_error",
        "rate_limit",
        "Too many requests hit the API too quickly. Please retry later.",
    ),
}
_SERVER_ERROR = ("api_error", None, "Something went wrong on Stripe's end.")
_ALNUM = string.ascii_letters + string.digits


def _random_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


def _stripe_error(status: int, type_: str, message: str) -> web.Response:
    return web.json_response({"error": {"type": type_, "message": message}}, status=status)


def _request_error(message: str, code: str | None = None, param: str | None = None) -> UserError:
    contents: dict[str, Any] = {}
    if code is not None:
        contents["code"] = code
    if param is not None:
        contents["param"] = param
    return UserError(400, message, contents)


def _api_key(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme == "Basic":
        try:
            value = base64.b64decode(value.strip()).decode("utf-8").split(":")[0]
        except ValueError:
            return None
    elif scheme != "Bearer":
        return None
    value = value.strip()
    return value if value.startswith(("sk_", "rk_")) and len(value) > 5 else None


async def _read_params(request: web.Request) -> dict:
    """The request's parameters: the form or JSON body of a POST, else the query string."""
    if "stripe_local.params" not in request:
        data: Any
        if request.method in ("POST", "PUT", "PATCH"):
            if request.content_type == "application/json":
                try:
                    data = await request.json()
                except ValueError:
                    data = {}
            else:
                data = ls_server.unflatten_data(await request.post())
        else:
            data = ls_server.unflatten_data(request.query)
        request["stripe_local.params"] = data if isinstance(data, dict) else {}
    return request["stripe_local.params"]


def _is_control(path: str) -> bool:
    return path.startswith("/_")


def _is_api(path: str) -> bool:
    return path.startswith("/v1/")


def _needs_no_key(path: str) -> bool:
    return _is_control(path) or path.startswith(("/p/", "/js.stripe.com/"))


def _middleware(func):
    async def middleware(request, handler):
        return await func(request, handler)

    middleware.__middleware_version__ = 1
    return middleware


def _page(heading: str, body: str, status: int = 200) -> web.Response:
    text = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(heading)} · {PORTAL_TITLE}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 36rem; margin: 3rem auto;
       padding: 0 1rem; color: #1f2333; line-height: 1.5; }}
header {{ border-bottom: 1px solid #d8dbe6; margin-bottom: 1.5rem; }}
dt {{ font-weight: 600; }} dd {{ margin: 0 0 .75rem; }}
label, input, button {{ display: block; font: inherit; margin: .25rem 0; }}
input {{ width: 100%; padding: .4rem; box-sizing: border-box; }}
button {{ padding: .4rem 1rem; margin-top: .75rem; }}
.note {{ color: #555b70; }}
</style>
</head>
<body>
<header><h1>{PORTAL_TITLE}</h1></header>
<main>
<h2>{html.escape(heading)}</h2>
{body}
</main>
</body>
</html>
"""
    return web.Response(
        text=text,
        status=status,
        content_type="text/html",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


@dataclass
class _Saved:
    """A request seen with an idempotency key, and its response once it finished."""

    method: str
    path: str
    params: dict
    created: float = field(default_factory=time.monotonic)
    status: int | None = None
    body: bytes = b""
    content_type: str = "application/json"
    charset: str | None = "utf-8"


@dataclass
class _PortalSession:
    data: dict
    expires_at: float


class _Emulator:
    """The state and the handlers that sit on top of localstripe."""

    def __init__(self, portal_session_ttl: float = PORTAL_SESSION_TTL):
        self.portal_session_ttl = portal_session_ttl
        self.sessions: dict[str, _PortalSession] = {}
        self.idempotency: collections.OrderedDict[tuple[str, str], _Saved] = (
            collections.OrderedDict()
        )
        self.faults: list[dict] = []
        self.fault_ids = 0
        self.log: collections.deque[dict] = collections.deque(maxlen=REQUEST_LOG_SIZE)

    # Middlewares, outermost first.

    async def log_requests(self, request: web.Request, handler) -> web.StreamResponse:
        path = request.path
        if _is_control(path) or path.startswith("/js.stripe.com/"):
            return await handler(request)
        entry = {
            "method": request.method,
            "path": path,
            "params": await _read_params(request),
            "idempotency_key": request.headers.get("Idempotency-Key"),
            "timestamp": time.time(),
            "status": None,
            "idempotent_replayed": False,
        }
        self.log.append(entry)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            entry["status"] = exc.status
            raise
        entry["status"] = response.status
        entry["idempotent_replayed"] = response.headers.get("Idempotent-Replayed") == "true"
        if _is_api(path):
            response.headers.setdefault("Request-Id", _random_id("req_", 14))
        return response

    async def inject_faults(self, request: web.Request, handler) -> web.StreamResponse:
        rule = None if _is_control(request.path) else self._take_fault(request)
        if rule is None:
            return await handler(request)
        if rule["status"] is None:
            # A slow Stripe: the request is taken (and holds its idempotency key) at once,
            # and answered late (see apply_idempotency).
            request["stripe_local.delay"] = rule["delay"]
            return await handler(request)
        if rule["delay"]:
            await asyncio.sleep(rule["delay"])
        status = rule["status"]
        type_, code, message = _FAULT_ERRORS.get(
            status, _SERVER_ERROR if status >= 500 else ("invalid_request_error", None, "Error.")
        )
        error = {"type": type_, "message": message}
        if code is not None:
            error["code"] = code
        error.update(rule["error"] or {})
        headers = {"Stripe-Should-Retry": "true" if rule["should_retry"] else "false"}
        if status == 429:
            headers["Retry-After"] = str(rule["retry_after"])
        return web.json_response({"error": error}, status=status, headers=headers)

    async def authenticate(self, request: web.Request, handler) -> web.StreamResponse:
        if _needs_no_key(request.path):
            return await handler(request)
        key = _api_key(request)
        if key is None and any(re.match(p, request.path) for p in _PUBLIC_KEY_PATHS):
            public = (await _read_params(request)).get("key") if request.method == "POST" else None
            if isinstance(public, str) and public.startswith("pk_"):
                key = public
        if key is None:
            message = (
                "Invalid API Key provided."
                if "Authorization" in request.headers
                else "You did not provide an API key. Provide it in the Authorization header, "
                "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."
            )
            return _stripe_error(401, "invalid_request_error", message)
        request["stripe_local.api_key"] = key
        return await handler(request)

    async def apply_idempotency(self, request: web.Request, handler) -> web.StreamResponse:
        key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or not _is_api(request.path) or key is None:
            await asyncio.sleep(request.get("stripe_local.delay", 0))
            return await handler(request)
        if not key or len(key) > 255:
            return _stripe_error(
                400,
                "invalid_request_error",
                "Invalid idempotency key: it must be 1 to 255 characters long.",
            )
        scope = (request.get("stripe_local.api_key", ""), key)
        params = await _read_params(request)
        saved = self.idempotency.get(scope)
        if saved is not None:
            return self._replay(saved, request, key, params)
        saved = self.idempotency[scope] = _Saved(request.method, request.path, params)
        self._prune_idempotency()
        try:
            await asyncio.sleep(request.get("stripe_local.delay", 0))
            response = await handler(request)
        except BaseException:
            self.idempotency.pop(scope, None)
            raise
        status = response.status
        body = getattr(response, "body", None)
        if isinstance(body, bytes) and (status < 400 or status >= 500 or status == 402):
            saved.status = status
            saved.body = body
            saved.content_type = response.content_type
            saved.charset = response.charset
        else:
            self.idempotency.pop(scope, None)
        response.headers["Idempotency-Key"] = key
        return response

    async def convert_errors(self, request: web.Request, handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except UserError as exc:
            return self._user_error_response(request, exc)
        except web.HTTPException as exc:
            if not _is_api(request.path) or exc.status not in (404, 405):
                raise
            return _stripe_error(
                404,
                "invalid_request_error",
                f"Unrecognized request URL ({request.method}: {request.path}).",
            )
        except Exception:
            if not _is_api(request.path):
                raise
            logging.getLogger(__name__).exception("error answering %s", request.path)
            return _stripe_error(500, "api_error", _SERVER_ERROR[2])

    def _user_error_response(self, request: web.Request, exc: UserError) -> web.Response:
        error = exc.body.get("error", {})
        match = re.match(r"^/v1/([a-z_]+?)s/([^/]+)$", request.path)
        if exc.code == 404 and error.get("message") == "Not Found" and match:
            error = {
                **error,
                "code": "resource_missing",
                "param": "id",
                "message": f"No such {match.group(1)}: '{match.group(2)}'",
            }
        return web.json_response({"error": error}, status=exc.code)

    def _replay(self, saved: _Saved, request: web.Request, key: str, params: dict):
        retry_hint = (
            f"Try using a key other than '{key}' if you meant to execute a different request."
        )
        if saved.status is None:
            return _stripe_error(
                409,
                "idempotency_error",
                "There is currently another in-progress request using this Stripe API key "
                "and idempotency key (that means the same key and the same endpoint). "
                + retry_hint,
            )
        if (saved.method, saved.path) != (request.method, request.path):
            return _stripe_error(
                400,
                "idempotency_error",
                "Keys for idempotent requests can only be used for the same endpoint they were "
                f"first used for ('{saved.method} {saved.path}' vs "
                f"'{request.method} {request.path}'). {retry_hint}",
            )
        if saved.params != params:
            return _stripe_error(
                400,
                "idempotency_error",
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. {retry_hint}",
            )
        return web.Response(
            body=saved.body,
            status=saved.status,
            content_type=saved.content_type,
            charset=saved.charset,
            headers={"Idempotent-Replayed": "true", "Idempotency-Key": key},
        )

    def _prune_idempotency(self) -> None:
        cutoff = time.monotonic() - IDEMPOTENCY_TTL
        while self.idempotency:
            oldest = next(iter(self.idempotency.values()))
            if len(self.idempotency) <= IDEMPOTENCY_MAX_KEYS and oldest.created > cutoff:
                break
            self.idempotency.popitem(last=False)

    def _take_fault(self, request: web.Request) -> dict | None:
        for rule in self.faults:
            if rule["method"] not in (None, request.method):
                continue
            if not re.search(rule["path"], request.path):
                continue
            if rule["times"] is not None:
                rule["times"] -= 1
                if rule["times"] <= 0:
                    self.faults.remove(rule)
            return rule
        return None

    # Billing portal.

    async def create_portal_session(self, request: web.Request) -> web.Response:
        params = await _read_params(request)
        for name in params:
            if name not in _SESSION_PARAMS:
                raise _request_error(f"Received unknown parameter: {name}", param=name)
        customer = params.get("customer")
        if not customer:
            raise _request_error(
                "Missing required param: customer.", code="parameter_missing", param="customer"
            )
        if not isinstance(customer, str) or f"customer:{customer}" not in ls_resources.store:
            raise _request_error(
                f"No such customer: '{customer}'", code="resource_missing", param="customer"
            )
        configuration = params.get("configuration") or DEFAULT_PORTAL_CONFIGURATION
        if not isinstance(configuration, str) or not configuration.startswith("bpc_"):
            raise _request_error(
                f"No such configuration: '{configuration}'",
                code="resource_missing",
                param="configuration",
            )
        return_url = params.get("return_url")
        if return_url is not None and not _is_url(return_url):
            raise _request_error("Not a valid URL", code="url_invalid", param="return_url")
        for name in ("locale", "on_behalf_of", "customer_account"):
            if params.get(name) is not None and not isinstance(params[name], str):
                raise _request_error(f"Invalid string: {params[name]!r}", param=name)
        session_id = _random_id("bps_")
        now = time.time()
        session = {
            "id": session_id,
            "object": "billing_portal.session",
            "after_expiration": _after_expiration(params.get("after_expiration")),
            "configuration": configuration,
            "created": int(now),
            "customer": customer,
            "customer_account": params.get("customer_account"),
            "flow": _flow(params.get("flow_data")),
            "livemode": False,
            "locale": params.get("locale") or None,
            "on_behalf_of": params.get("on_behalf_of"),
            "return_url": return_url,
            "url": f"{request.scheme}://{request.host}/p/session/{session_id}",
        }
        for old_id in [k for k, s in self.sessions.items() if s.expires_at <= now]:
            del self.sessions[old_id]
        self.sessions[session_id] = _PortalSession(session, now + self.portal_session_ttl)
        return ls_server.json_response(session)

    def _portal_customer(self, request: web.Request):
        """The live session named in the URL and its customer, or (None, None)."""
        entry = self.sessions.get(request.match_info["id"])
        if entry is None or entry.expires_at <= time.time():
            return None, None
        customer = ls_resources.store.get(f"customer:{entry.data['customer']}")
        return (entry.data, customer) if customer is not None else (None, None)

    async def portal_page(self, request: web.Request) -> web.Response:
        session, customer = self._portal_customer(request)
        if session is None:
            return _page(
                "Link expired",
                '<p class="note">This billing portal link is not valid or has expired. '
                "Go back to Petra and open the billing portal again.</p>",
                status=404,
            )
        notice = '<p role="status">Billing email updated.</p>' if "updated" in request.query else ""
        return_link = ""
        if session["return_url"]:
            href = html.escape(session["return_url"])
            return_link = f'<p><a id="return-link" href="{href}">Return to Petra</a></p>'
        email = html.escape(customer.email or "")
        body = f"""{notice}
<dl>
<dt>Email</dt><dd id="customer-email">{email or "—"}</dd>
<dt>Name</dt><dd id="customer-name">{html.escape(customer.name or "") or "—"}</dd>
</dl>
<form method="post">
<label for="email">Billing email</label>
<input type="email" id="email" name="email" value="{email}" required>
<button type="submit">Update email</button>
</form>
{return_link}"""
        return _page("Billing", body)

    async def portal_update(self, request: web.Request) -> web.Response:
        session, customer = self._portal_customer(request)
        if session is None:
            return await self.portal_page(request)
        email = str((await request.post()).get("email", "")).strip()
        if "@" not in email:
            return _page(
                "Billing",
                '<p class="note">Enter a valid email address.</p>'
                f'<p><a href="{html.escape(request.path)}">Back</a></p>',
                status=400,
            )
        ls_resources.Customer._api_update(customer.id, email=email)
        raise web.HTTPSeeOther(f"{request.path}?updated=1")

    async def login_page(self, request: web.Request) -> web.Response:
        email = request.query.get("prefilled_email", "")
        return _page("Sign in", self._login_form(email))

    async def login_submit(self, request: web.Request) -> web.Response:
        email = str((await request.post()).get("email", "")).strip()
        if not email:
            error = '<p class="note" id="email-error">Enter your email address.</p>'
            return _page("Sign in", error + self._login_form(email), status=400)
        address = html.escape(email)
        return _page(
            "Check your email",
            f'<p id="sent-to">We sent a login link to <strong>{address}</strong> if it belongs '
            "to a customer. The link expires shortly.</p>",
        )

    @staticmethod
    def _login_form(email: str) -> str:
        return f"""<p class="note">Enter the billing email of your account and we will email you
a link to sign in.</p>
<form method="post">
<label for="email">Email</label>
<input type="email" id="email" name="email" value="{html.escape(email)}" required
 autocomplete="email">
<button type="submit">Send link</button>
</form>"""

    # Test controls.

    async def add_fault(self, request: web.Request) -> web.Response:
        try:
            rule = _parse_fault(await request.json())
        except (ValueError, TypeError, re.error) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self.fault_ids += 1
        rule["id"] = self.fault_ids
        self.faults.append(rule)
        return web.json_response(rule, status=201)

    async def list_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.faults)

    async def clear_faults(self, request: web.Request) -> web.Response:
        self.faults.clear()
        return web.Response(status=204)

    async def list_requests(self, request: web.Request) -> web.Response:
        prefix = request.query.get("path_prefix", "")
        entries = [e for e in self.log if e["path"].startswith(prefix)]
        return web.json_response(entries, dumps=lambda x: json.dumps(x, default=str))

    async def clear_requests(self, request: web.Request) -> web.Response:
        self.log.clear()
        return web.Response(status=204)

    async def clear_data(self, request: web.Request) -> web.Response:
        ls_resources.store.clear()
        self.sessions.clear()
        self.idempotency.clear()
        return web.Response()

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")


def _is_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urllib.parse.urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _flow(flow_data: Any) -> dict | None:
    if flow_data is None:
        return None
    if not isinstance(flow_data, dict) or flow_data.get("type") not in _FLOW_TYPES:
        raise _request_error(
            "Invalid flow_data[type]: must be one of " + ", ".join(_FLOW_TYPES),
            param="flow_data[type]",
        )
    after = flow_data.get("after_completion") or {}
    if not isinstance(after, dict):
        raise _request_error("Invalid object", param="flow_data[after_completion]")
    flow = {
        "type": flow_data["type"],
        "after_completion": {
            "type": after.get("type", "portal_homepage"),
            "hosted_confirmation": after.get("hosted_confirmation"),
            "redirect": after.get("redirect"),
        },
    }
    for name in _FLOW_TYPES:
        if name != "payment_method_update":
            flow[name] = flow_data.get(name)
    return flow


def _after_expiration(value: Any) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type") != "customer_login":
        raise _request_error(
            "Invalid after_expiration[type]: must be customer_login",
            param="after_expiration[type]",
        )
    login = value.get("customer_login") or {}
    expires_at = login.get("expires_at") if isinstance(login, dict) else None
    if expires_at is not None and not str(expires_at).isdigit():
        raise _request_error(
            f"Invalid integer: {expires_at}", param="after_expiration[customer_login][expires_at]"
        )
    return {
        "type": "customer_login",
        "customer_login": {"expires_at": int(expires_at) if expires_at is not None else None},
    }


def _parse_fault(data: Any) -> dict:
    """Validate a fault rule posted to ``/_faults``; raise ValueError when it is wrong."""
    if not isinstance(data, dict):
        raise ValueError("a fault rule is a JSON object")
    unknown = set(data) - _FAULT_KEYS
    if unknown:
        raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
    path = data.get("path")
    if not isinstance(path, str):
        raise ValueError("path (a regular expression) is required")
    re.compile(path)
    method = data.get("method")
    if method is not None and not isinstance(method, str):
        raise ValueError("method must be a string")
    status = data.get("status")
    if status is not None and (type(status) is not int or not 400 <= status <= 599):
        raise ValueError("status must be an HTTP error status (400-599)")
    delay = data.get("delay") or 0
    if type(delay) not in (int, float) or not 0 <= delay <= 600:
        raise ValueError("delay must be a number of seconds (0-600)")
    if status is None and not delay:
        raise ValueError("a fault needs a status, a delay or both")
    times = data.get("times")
    if times is not None and (type(times) is not int or times < 1):
        raise ValueError("times must be a positive integer")
    error = data.get("error")
    if error is not None and not isinstance(error, dict):
        raise ValueError("error must be an object")
    retry_after = data.get("retry_after", 1)
    if type(retry_after) is not int or retry_after < 0:
        raise ValueError("retry_after must be a whole number of seconds")
    return {
        "method": method.upper() if method else None,
        "path": path,
        "status": status,
        "error": error,
        "delay": delay,
        "times": times,
        "should_retry": bool(data.get("should_retry", False)),
        "retry_after": retry_after,
    }


def create_app(portal_session_ttl: float = PORTAL_SESSION_TTL) -> web.Application:
    """The aiohttp app: localstripe's routes plus ours, with state in memory only."""
    global ls_resources, ls_server, UserError
    if web is None:
        raise RuntimeError("the local Stripe server needs aiohttp and localstripe installed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from localstripe import resources as ls_resources
        from localstripe import server as ls_server
        from localstripe.errors import UserError
    ls_resources.Store.dump_to_disk = lambda self: None
    ls_resources.Store.try_load_from_disk = lambda self: None
    ls_resources.store.clear()

    emulator = _Emulator(portal_session_ttl)
    app = web.Application(
        middlewares=[
            _middleware(emulator.log_requests),
            _middleware(emulator.inject_faults),
            _middleware(emulator.authenticate),
            _middleware(emulator.apply_idempotency),
            _middleware(emulator.convert_errors),
        ]
    )
    app.on_response_prepare.append(ls_server.add_cors_headers)
    router = app.router
    router.add_post("/v1/billing_portal/sessions", emulator.create_portal_session)
    router.add_get("/p/session/{id}", emulator.portal_page)
    router.add_post("/p/session/{id}", emulator.portal_update)
    router.add_get("/p/login/{config_id}", emulator.login_page)
    router.add_post("/p/login/{config_id}", emulator.login_submit)
    router.add_post("/_faults", emulator.add_fault)
    router.add_get("/_faults", emulator.list_faults)
    router.add_delete("/_faults", emulator.clear_faults)
    router.add_get("/_requests", emulator.list_requests)
    router.add_delete("/_requests", emulator.clear_requests)
    router.add_delete("/_config/data", emulator.clear_data)
    router.add_get("/_health", emulator.health)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for route in ls_server.app.router.routes():
            if route.handler is not ls_server.flush_store:
                router.add_route(route.method, route.resource.canonical, route.handler)
    return app


class LocalStripeError(RuntimeError):
    """The local Stripe server could not be started or refused a control request."""


class LocalStripe:
    """A local Stripe server in a subprocess, and its test controls.

    >>> with LocalStripe().start() as server:
    ...     server.fault(method="POST", path="^/v1/customers", status=500, times=1)
    """

    api_key = API_KEY

    def __init__(
        self, host: str = DEFAULT_HOST, *, portal_session_ttl: float | None = None
    ) -> None:
        self.host = host
        self.port: int | None = None
        self.portal_session_ttl = portal_session_ttl
        self.process: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self._base: str | None = None

    @classmethod
    def attach(cls, api_base: str) -> LocalStripe:
        """Controls for a server that is already running at ``api_base``."""
        server = cls(urllib.parse.urlsplit(api_base).hostname or DEFAULT_HOST)
        server.port = urllib.parse.urlsplit(api_base).port
        server._base = api_base.rstrip("/")
        return server

    @property
    def api_base(self) -> str:
        """The address to give the Stripe SDK (``base_addresses={"api": ...}``)."""
        if self._base is None:
            raise LocalStripeError("the local Stripe server is not started")
        return self._base

    @property
    def portal_login_url(self) -> str:
        return f"{self.api_base}/p/login/{PORTAL_LOGIN_CONFIG}"

    def start(self, port: int = 0, timeout: float = 15.0) -> LocalStripe:
        """Start the server (on a free port when ``port`` is 0) and wait until it answers."""
        if self.process is not None:
            raise LocalStripeError("the local Stripe server is already started")
        attempts = 3 if port == 0 else 1
        for attempt in range(1, attempts + 1):
            try:
                self._launch(port or _free_port(self.host), timeout)
                break
            except LocalStripeError:
                if attempt == attempts:
                    raise
        return self

    def _launch(self, port: int, timeout: float) -> None:
        package_root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        command = [sys.executable, "-m", "billing_app.stripe_local"]
        command += ["--host", self.host, "--port", str(port)]
        if self.portal_session_ttl is not None:
            command += ["--portal-session-ttl", str(self.portal_session_ttl)]
        fd, log_name = tempfile.mkstemp(prefix="stripe-local-", suffix=".log")
        self.log_path = Path(log_name)
        with os.fdopen(fd, "wb") as log:
            self.process = subprocess.Popen(  # noqa: S603
                command, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        self.port = port
        self._base = f"http://{_url_host(self.host)}:{port}"
        try:
            wait_until_healthy(self._base, timeout, process=self.process)
        except LocalStripeError as exc:
            output = self.log_path.read_text(errors="replace")[-2000:]
            self.stop()
            raise LocalStripeError(f"{exc}\n{output}") from None

    def stop(self) -> None:
        """Stop the server started by :meth:`start`."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process is not None and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> LocalStripe:
        if self.process is None and self._base is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def fault(self, **rule: Any) -> dict:
        """Add a fault rule; see the module docstring for its fields."""
        return self._control("POST", "/_faults", rule)

    def faults(self) -> list[dict]:
        return self._control("GET", "/_faults")

    def clear_faults(self) -> None:
        self._control("DELETE", "/_faults")

    def requests(self, path_prefix: str | None = None) -> list[dict]:
        """The requests received, oldest first, optionally only those under ``path_prefix``."""
        query = "?" + urllib.parse.urlencode({"path_prefix": path_prefix}) if path_prefix else ""
        return self._control("GET", "/_requests" + query)

    def clear_requests(self) -> None:
        self._control("DELETE", "/_requests")

    def clear_data(self) -> None:
        """Forget all Stripe objects, portal sessions and idempotency keys."""
        self._control("DELETE", "/_config/data")

    def reset(self) -> None:
        """Clear data, faults and the request log."""
        self.clear_data()
        self.clear_faults()
        self.clear_requests()

    def register_webhook(
        self, url: str, secret: str, events: list[str] | None = None, name: str = "petra"
    ) -> None:
        """Have events POSTed to ``url``, signed with ``secret`` (``Stripe-Signature``)."""
        body: dict[str, Any] = {"url": url, "secret": secret}
        if events is not None:
            body["events"] = events
        self._control("POST", f"/_config/webhooks/{urllib.parse.quote(name, safe='')}", body)

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        return _http_json(method, self.api_base + path, body)


def _http_json(method: str, url: str, body: Any = None, timeout: float = 10.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            text = response.read().decode()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        raise LocalStripeError(f"{method} {url} answered {exc.code}: {detail}") from None
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def wait_until_healthy(
    api_base: str, timeout: float = 15.0, process: subprocess.Popen | None = None
) -> None:
    """Wait until the server at ``api_base`` answers ``/_health``; raise LocalStripeError if not."""
    deadline = time.monotonic() + timeout
    url = api_base.rstrip("/") + "/_health"
    while True:
        if process is not None and process.poll() is not None:
            raise LocalStripeError(f"the local Stripe server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            raise LocalStripeError(f"no answer from {url} within {timeout:g} s")
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> None:
    """Serve the local Stripe server, or with ``--wait`` wait for one (and register a webhook)."""
    parser = argparse.ArgumentParser(
        prog="python -m billing_app.stripe_local", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (loopback)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--portal-session-ttl",
        type=float,
        default=PORTAL_SESSION_TTL,
        help="seconds a billing portal session link stays valid",
    )
    parser.add_argument("--wait", metavar="API_BASE", help="wait for a running server instead")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds to --wait")
    parser.add_argument("--webhook", metavar="URL", help="with --wait: send webhooks to URL")
    parser.add_argument(
        "--webhook-secret",
        default=os.environ.get("STRIPE_WEBHOOK_SECRET"),
        help="signing secret for --webhook (default: $STRIPE_WEBHOOK_SECRET)",
    )
    parser.add_argument(
        "--webhook-event",
        action="append",
        dest="webhook_events",
        metavar="TYPE",
        help="with --webhook: only send this event type (repeatable; default: all)",
    )
    args = parser.parse_args(argv)

    if args.wait:
        try:
            wait_until_healthy(args.wait, args.timeout)
            if args.webhook:
                if not args.webhook_secret:
                    parser.error("--webhook needs --webhook-secret or $STRIPE_WEBHOOK_SECRET")
                LocalStripe.attach(args.wait).register_webhook(
                    args.webhook, args.webhook_secret, args.webhook_events
                )
        except LocalStripeError as exc:
            sys.exit(f"local Stripe server: {exc}")
        return

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    web.run_app(
        create_app(portal_session_ttl=args.portal_session_ttl),
        host=args.host,
        port=args.port,
        print=lambda _: print(
            f"Local Stripe server on http://{_url_host(args.host)}:{args.port}", flush=True
        ),
    )


if __name__ == "__main__":
    main()
