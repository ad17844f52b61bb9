"""Structured logs: one JSON object per line, with the request id, and no secrets.

Every request gets an id: the incoming `X-Request-ID` header when it is well-formed, else a
fresh one. It is kept on `g.request_id`, sent back in the `X-Request-ID` response header and
added to every log line written while the request is handled. Billing actions log with the
logger `billing_app.billing` and `extra={...}`; the extra fields become fields of the line.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
import uuid
from collections.abc import Mapping
from typing import Any, TextIO

from flask import Flask, Response, g, has_request_context, request

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
REDACTED = "[redacted]"
APP_LOGGER = "billing_app"
BILLING_LOGGER = f"{APP_LOGGER}.billing"
"""The logger of billing actions (saves, portal openings, downloads, webhooks, staff commands)."""

# Attributes every LogRecord has; anything else on a record came from `extra`.
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
) | {"message", "asctime", "request_id"}

_SECRET_NAME = re.compile(
    r"^pass$|passw(?:or)?d|secret|csrf|token|session|cookie|authori[sz]ation|api[_-]?key"
    r"|signature",
    re.IGNORECASE,
)
_SEPARATOR = r"[\"']?\s*[:=]\s*[\"']?"
_SECRET_TEXT = (
    # An Authorization header's whole value ("Basic ...", "Bearer ...").
    (re.compile(rf"(?i)\b(authori[sz]ation{_SEPARATOR})[^\"'\r\n,;}}]+"), rf"\1{REDACTED}"),
    # name=value, name: value, "name": "value" for secret-sounding names.
    (
        re.compile(
            rf"(?i)\b([\w-]*(?:passw(?:or)?d|secret|csrf|token|session|cookie|api[_-]?key)"
            rf"[\w-]*{_SEPARATOR})[^\s\"'&,;}}]+"
        ),
        rf"\1{REDACTED}",
    ),
    # Stripe secret and restricted keys, webhook secrets, client secrets; bearer tokens.
    (re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9_]+"), REDACTED),
    (re.compile(r"\bwhsec_[A-Za-z0-9_]+"), REDACTED),
    (re.compile(r"\b[a-z]+_[A-Za-z0-9]+_secret_[A-Za-z0-9_]+"), REDACTED),
    (re.compile(r"\bBearer\s+[A-Za-z0-9._~+/=-]+"), REDACTED),
)


billing_log = logging.getLogger(BILLING_LOGGER)


def redact_text(text: str) -> str:
    """`text` with secret-looking values replaced."""
    for pattern, replacement in _SECRET_TEXT:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any, name: str | None = None) -> Any:
    """`value` with secrets replaced: whole values under secret-sounding names, and
    secret-looking substrings anywhere."""
    if name is not None and _SECRET_NAME.search(name) and value not in (None, "", [], {}):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {str(key): redact(item, str(key)) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(item) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact_text(str(value))


class RequestIdFilter(logging.Filter):
    """Adds the id of the request being handled (if any) to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id") and has_request_context():
            record.request_id = g.get("request_id")
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request id, the `extra`
    fields and the exception, with secrets redacted."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "request_id", None):
            entry["request_id"] = record.request_id
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_") and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        safe = {
            key: redact(value, None if key == "message" else key) for key, value in entry.items()
        }
        return json.dumps(safe, ensure_ascii=False, default=str)


def json_handler(stream: TextIO) -> logging.Handler:
    """A handler writing JSON lines to `stream`, with request ids and redaction."""
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    handler._petra_json = True  # type: ignore[attr-defined]
    return handler


def configure(level: str | int = logging.INFO, stream: TextIO | None = None) -> None:
    """Send the app's logs (`billing_app` and below) as JSON lines to stderr."""
    logger = logging.getLogger(APP_LOGGER)
    for handler in list(logger.handlers):
        if getattr(handler, "_petra_json", False):
            logger.removeHandler(handler)
    logger.addHandler(json_handler(stream or sys.stderr))
    logger.setLevel(level)
    logger.propagate = False


def _assign_request_id() -> None:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = incoming if REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex


def _send_request_id(response: Response) -> Response:
    if not g.get("request_id"):
        _assign_request_id()
    response.headers[REQUEST_ID_HEADER] = g.request_id
    return response


def init_app(app: Flask) -> None:
    """Give every request an id; log as JSON lines unless testing."""
    app.before_request_funcs.setdefault(None, []).insert(0, _assign_request_id)
    app.after_request(_send_request_id)
    if not app.testing:
        configure(app.config.get("LOG_LEVEL", "INFO"))
