"""The local Stripe server: localstripe's routes and ours on one aiohttp app, with a request
log, Stripe's API-key checks and error shapes, and the test controls."""

from __future__ import annotations

import base64
import collections
import json
import logging
import re
import time
import warnings

from .base import (
    PORTAL_SESSION_TTL,
    is_api,
    is_control,
    localstripe,
    middleware,
    random_id,
    read_params,
    stripe_error,
    web,
)
from .faults import SERVER_ERROR, Faults
from .idempotency import Idempotency
from .portal import Portal

REQUEST_LOG_SIZE = 10_000

_PUBLIC_KEY_PATHS = (
    r"^/v1/tokens$",
    r"^/v1/sources$",
    r"^/v1/payment_intents/\w+/_authenticate\b",
    r"^/v1/setup_intents/\w+/confirm$",
    r"^/v1/setup_intents/\w+/cancel$",
)


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


def _needs_no_key(path: str) -> bool:
    return is_control(path) or path.startswith(("/p/", "/js.stripe.com/"))


class _Server:
    """The request log, API-key checks, error conversion and the test controls."""

    def __init__(self) -> None:
        self.log: collections.deque[dict] = collections.deque(maxlen=REQUEST_LOG_SIZE)

    async def log_requests(self, request: web.Request, handler) -> web.StreamResponse:
        path = request.path
        if is_control(path) or path.startswith("/js.stripe.com/"):
            return await handler(request)
        entry = {
            "method": request.method,
            "path": path,
            "params": await read_params(request),
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
        if is_api(path):
            response.headers.setdefault("Request-Id", random_id("req_", 14))
        return response

    async def authenticate(self, request: web.Request, handler) -> web.StreamResponse:
        if _needs_no_key(request.path):
            return await handler(request)
        key = _api_key(request)
        if key is None and any(re.match(p, request.path) for p in _PUBLIC_KEY_PATHS):
            public = (await read_params(request)).get("key") if request.method == "POST" else None
            if isinstance(public, str) and public.startswith("pk_"):
                key = public
        if key is None:
            message = (
                "Invalid API Key provided."
                if "Authorization" in request.headers
                else "You did not provide an API key. Provide it in the Authorization header, "
                "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."
            )
            return stripe_error(401, "invalid_request_error", message)
        request["stripe_local.api_key"] = key
        return await handler(request)

    async def convert_errors(self, request: web.Request, handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except localstripe().UserError as exc:
            return self._user_error_response(request, exc)
        except web.HTTPException as exc:
            if not is_api(request.path) or exc.status not in (404, 405):
                raise
            return stripe_error(
                404,
                "invalid_request_error",
                f"Unrecognized request URL ({request.method}: {request.path}).",
            )
        except Exception:
            if not is_api(request.path):
                raise
            logging.getLogger(__name__).exception("error answering %s", request.path)
            return stripe_error(500, "api_error", SERVER_ERROR[2])

    def _user_error_response(self, request: web.Request, exc) -> web.Response:
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

    async def list_requests(self, request: web.Request) -> web.Response:
        prefix = request.query.get("path_prefix", "")
        entries = [e for e in self.log if e["path"].startswith(prefix)]
        return web.json_response(entries, dumps=lambda x: json.dumps(x, default=str))

    async def clear_requests(self, request: web.Request) -> web.Response:
        self.log.clear()
        return web.Response(status=204)

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")


def create_app(portal_session_ttl: float = PORTAL_SESSION_TTL) -> web.Application:
    """The aiohttp app: localstripe's routes plus ours, with state in memory only."""
    ls = localstripe()
    ls.resources.store.clear()
    server, faults, idempotency = _Server(), Faults(), Idempotency()
    portal = Portal(portal_session_ttl)

    async def clear_data(request: web.Request) -> web.Response:
        ls.resources.store.clear()
        portal.clear()
        idempotency.clear()
        return web.Response()

    app = web.Application(
        middlewares=[
            middleware(server.log_requests),
            middleware(faults.inject),
            middleware(server.authenticate),
            middleware(idempotency.apply),
            middleware(server.convert_errors),
        ]
    )
    app.on_response_prepare.append(ls.server.add_cors_headers)
    router = app.router
    router.add_post("/v1/billing_portal/sessions", portal.create_portal_session)
    router.add_get("/p/session/{id}", portal.portal_page)
    router.add_post("/p/session/{id}", portal.portal_update)
    router.add_get("/p/login/{config_id}", portal.login_page)
    router.add_post("/p/login/{config_id}", portal.login_submit)
    router.add_post("/_faults", faults.add)
    router.add_get("/_faults", faults.list)
    router.add_delete("/_faults", faults.clear)
    router.add_get("/_requests", server.list_requests)
    router.add_delete("/_requests", server.clear_requests)
    router.add_delete("/_config/data", clear_data)
    router.add_get("/_health", server.health)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for route in ls.server.app.router.routes():
            if route.handler is not ls.server.flush_store:
                router.add_route(route.method, route.resource.canonical, route.handler)
    return app
