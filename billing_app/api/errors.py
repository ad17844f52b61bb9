"""The API's errors: `{"error": {"type": "...", "message": "..."}}` with the right status, for
every route under /api/ (unknown paths, wrong methods and failures included); a 401 says
`WWW-Authenticate: Bearer`, a 429 carries the rate limiter's `Retry-After`."""

from __future__ import annotations

import json
import logging

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

PREFIX = "/api/"

TYPES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    429: "rate_limited",
    500: "server_error",
}
MESSAGES = {
    400: "The request could not be understood.",
    401: "Send a token as `Authorization: Bearer petra_…`.",
    403: "This token may not read this.",
    404: "There is nothing here. The API's resources are listed in /api/v1/openapi.json.",
    405: "This API only reads: use GET.",
    413: "Request bodies over 1 MB are refused.",
    429: "Too many requests with this token. Wait as long as Retry-After says, then go on.",
    500: "Something went wrong on our side. Try again in a minute.",
}


class ApiError(Exception):
    """An answer other than success, with a message that says what to do."""

    def __init__(self, status: int, type_: str, message: str, **detail: object) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.detail = detail


def is_api_request() -> bool:
    return request.path.startswith(PREFIX)


def json_error(status: int, type_: str | None = None, message: str | None = None) -> Response:
    """The error answer, with `WWW-Authenticate` on a 401."""
    body = {
        "error": {
            "type": type_ or TYPES.get(status, "error"),
            "message": message or MESSAGES.get(status, "The request failed."),
        }
    }
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    if status == 401:
        invalid = ' error="invalid_token"' if request.headers.get("Authorization") else ""
        response.headers["WWW-Authenticate"] = f'Bearer realm="Petra API"{invalid}'
    return response


def from_http(error: HTTPException) -> Response:
    """An HTTP error (routing, rate limit, size) raised on an API route, as JSON."""
    status = error.code or 500
    response = json_error(status)
    if status == 405 and (allowed := getattr(error, "valid_methods", None)):
        response.headers["Allow"] = ", ".join(allowed)
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(error: ApiError):
        return json_error(error.status, error.type, error.message)

    @app.errorhandler(500)
    def server_error(error):
        """Unexpected failures: JSON on the API, Flask's own answer elsewhere."""
        if is_api_request():
            log.error("API request failed: %s", request.path, exc_info=True)
            return json_error(500)
        return error
