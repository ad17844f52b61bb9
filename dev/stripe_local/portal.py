"""The billing portal that localstripe lacks: session creation (``POST
/v1/billing_portal/sessions``), the portal page a session's URL opens (where the billing
email can be changed), and the portal login page of the emailed-link flow."""

from __future__ import annotations

import html
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from .base import PORTAL_SESSION_TTL, localstripe, random_id, read_params, request_error, web

DEFAULT_PORTAL_CONFIGURATION = "bpc_local_default"
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
class _PortalSession:
    data: dict
    expires_at: float


class Portal:
    """Portal sessions and the portal's pages."""

    def __init__(self, portal_session_ttl: float = PORTAL_SESSION_TTL) -> None:
        self.portal_session_ttl = portal_session_ttl
        self.sessions: dict[str, _PortalSession] = {}

    def clear(self) -> None:
        self.sessions.clear()

    async def create_portal_session(self, request: web.Request) -> web.Response:
        params = await read_params(request)
        for name in params:
            if name not in _SESSION_PARAMS:
                raise request_error(f"Received unknown parameter: {name}", param=name)
        customer = params.get("customer")
        if not customer:
            raise request_error(
                "Missing required param: customer.", code="parameter_missing", param="customer"
            )
        if (
            not isinstance(customer, str)
            or f"customer:{customer}" not in localstripe().resources.store
        ):
            raise request_error(
                f"No such customer: '{customer}'", code="resource_missing", param="customer"
            )
        configuration = params.get("configuration") or DEFAULT_PORTAL_CONFIGURATION
        if not isinstance(configuration, str) or not configuration.startswith("bpc_"):
            raise request_error(
                f"No such configuration: '{configuration}'",
                code="resource_missing",
                param="configuration",
            )
        return_url = params.get("return_url")
        if return_url is not None and not _is_url(return_url):
            raise request_error("Not a valid URL", code="url_invalid", param="return_url")
        for name in ("locale", "on_behalf_of", "customer_account"):
            if params.get(name) is not None and not isinstance(params[name], str):
                raise request_error(f"Invalid string: {params[name]!r}", param=name)
        session_id = random_id("bps_")
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
        return localstripe().server.json_response(session)

    def _portal_customer(self, request: web.Request):
        """The live session named in the URL and its customer, or (None, None)."""
        entry = self.sessions.get(request.match_info["id"])
        if entry is None or entry.expires_at <= time.time():
            return None, None
        customer = localstripe().resources.store.get(f"customer:{entry.data['customer']}")
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
        localstripe().resources.Customer._api_update(customer.id, email=email)
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


def _is_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urllib.parse.urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _flow(flow_data: Any) -> dict | None:
    if flow_data is None:
        return None
    if not isinstance(flow_data, dict) or flow_data.get("type") not in _FLOW_TYPES:
        raise request_error(
            "Invalid flow_data[type]: must be one of " + ", ".join(_FLOW_TYPES),
            param="flow_data[type]",
        )
    after = flow_data.get("after_completion") or {}
    if not isinstance(after, dict):
        raise request_error("Invalid object", param="flow_data[after_completion]")
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
        raise request_error(
            "Invalid after_expiration[type]: must be customer_login",
            param="after_expiration[type]",
        )
    login = value.get("customer_login") or {}
    expires_at = login.get("expires_at") if isinstance(login, dict) else None
    if expires_at is not None and not str(expires_at).isdigit():
        raise request_error(
            f"Invalid integer: {expires_at}", param="after_expiration[customer_login][expires_at]"
        )
    return {
        "type": "customer_login",
        "customer_login": {"expires_at": int(expires_at) if expires_at is not None else None},
    }
