"""Error pages: whole pages for browsers, fragments for htmx."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, Response, current_app, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, SecurityError

from billing_app.access import is_htmx

MESSAGES = {
    400: "The request could not be understood.",
    403: "You do not have access to this page. Ask an admin of your organisation if you need it.",
    404: "There is nothing here.",
    405: "That action is not available here.",
    413: "That request is too large: Petra accepts at most 1 MB at a time.",
    429: "Too many attempts. Please wait a minute and try again.",
}


def render_error(status: int, message: str | None = None, title: str | None = None):
    """Render an error as a page, or as a fragment for htmx."""
    message = message or MESSAGES.get(status, "Something went wrong.")
    template = "_error.html" if is_htmx() else "error.html"
    return render_template(template, status=status, message=message, title=title), status


def answer_under(app: Flask, prefix: str, answer: Callable[[HTTPException], Response]) -> None:
    """Have HTTP errors of paths under `prefix` answered by `answer` (the API's JSON) instead
    of an error page."""
    app.extensions.setdefault("error_answers", {})[prefix] = answer


def _answered_elsewhere(error: HTTPException) -> Response | None:
    for prefix, answer in current_app.extensions.get("error_answers", {}).items():
        if request.path.startswith(prefix):
            return answer(error)
    return None


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        if (answered := _answered_elsewhere(error)) is not None:
            return answered
        return render_error(
            400, "Your session expired or the form was stale. Reload the page and try again."
        )

    @app.errorhandler(SecurityError)
    def untrusted_host(error: SecurityError):
        """A host name the app does not answer to: no page, whose links would name that host."""
        return "This host name is not served here.\n", 400, {"Content-Type": "text/plain"}

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if (answered := _answered_elsewhere(error)) is not None:
            return answered
        if error.code == 429:
            return render_error(429)
        custom = error.description != type(error).description
        return render_error(error.code or 500, error.description if custom else None)
