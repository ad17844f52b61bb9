"""The fault switch: rules posted to ``/_faults`` make matching requests fail (with Stripe's
error of the given status) or wait, a number of times or until cleared."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from .base import is_control, web

FAULT_KEYS = frozenset(
    {"method", "path", "status", "error", "delay", "times", "should_retry", "retry_after"}
)
FAULT_ERRORS = {
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
SERVER_ERROR = ("api_error", None, "Something went wrong on Stripe's end.")


class Faults:
    """The fault rules, the middleware that applies them and the control endpoints."""

    def __init__(self) -> None:
        self.rules: list[dict] = []
        self.ids = 0

    async def inject(self, request: web.Request, handler) -> web.StreamResponse:
        rule = None if is_control(request.path) else self._take(request)
        if rule is None:
            return await handler(request)
        if rule["delay"]:
            await asyncio.sleep(rule["delay"])
        if rule["status"] is None:
            return await handler(request)
        status = rule["status"]
        type_, code, message = FAULT_ERRORS.get(
            status, SERVER_ERROR if status >= 500 else ("invalid_request_error", None, "Error.")
        )
        error = {"type": type_, "message": message}
        if code is not None:
            error["code"] = code
        error.update(rule["error"] or {})
        headers = {"Stripe-Should-Retry": "true" if rule["should_retry"] else "false"}
        if status == 429:
            headers["Retry-After"] = str(rule["retry_after"])
        return web.json_response({"error": error}, status=status, headers=headers)

    def _take(self, request: web.Request) -> dict | None:
        for rule in self.rules:
            if rule["method"] not in (None, request.method):
                continue
            if not re.search(rule["path"], request.path):
                continue
            if rule["times"] is not None:
                rule["times"] -= 1
                if rule["times"] <= 0:
                    self.rules.remove(rule)
            return rule
        return None

    async def add(self, request: web.Request) -> web.Response:
        try:
            rule = parse_fault(await request.json())
        except (ValueError, TypeError, re.error) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self.ids += 1
        rule["id"] = self.ids
        self.rules.append(rule)
        return web.json_response(rule, status=201)

    async def list(self, request: web.Request) -> web.Response:
        return web.json_response(self.rules)

    async def clear(self, request: web.Request) -> web.Response:
        self.rules.clear()
        return web.Response(status=204)


def parse_fault(data: Any) -> dict:
    """Validate a fault rule posted to ``/_faults``; raise ValueError when it is wrong."""
    if not isinstance(data, dict):
        raise ValueError("a fault rule is a JSON object")
    unknown = set(data) - FAULT_KEYS
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
