"""Structured logs: request ids, JSON lines with the `extra` fields, and no secrets."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from billing_app.logs import REDACTED, JsonFormatter, json_handler, redact_text

pytestmark = pytest.mark.stripe_customer

ROOT = Path(__file__).resolve().parent.parent
GENERATED_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def billing_log() -> Iterator[io.StringIO]:
    """The lines the `billing_app.billing` logger writes, through the app's JSON handler."""
    stream = io.StringIO()
    handler = json_handler(stream)
    logger = logging.getLogger("billing_app.billing")
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(previous_level)


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_well_formed_request_id_is_sent_back(client):
    response = client.get("/login", headers={"X-Request-ID": "edge-7f3a.01:retry_2"})
    assert response.headers["X-Request-ID"] == "edge-7f3a.01:retry_2"


@pytest.mark.parametrize(
    "incoming",
    ["", "has space", "<script>", "x" * 129, "id;Set-Cookie=a", "-leading-dash", "ünï"],
)
def test_malformed_request_id_is_replaced(client, incoming):
    response = client.get("/login", headers={"X-Request-ID": incoming})
    assert GENERATED_ID.fullmatch(response.headers["X-Request-ID"])


def test_each_request_gets_its_own_id(client):
    ids = {client.get("/login").headers["X-Request-ID"] for _ in range(3)}
    assert len(ids) == 3 and all(GENERATED_ID.fullmatch(i) for i in ids)


def test_error_responses_carry_the_request_id(client, organisation):
    missing = client.get("/no-such-page", headers={"X-Request-ID": "req-404"})
    client.get("/login")
    csrf = client.post(
        "/login", data={"email": "a@b.example", "password": "x"}, headers={"X-Request-ID": "r400"}
    )
    assert (missing.status_code, missing.headers["X-Request-ID"]) == (404, "req-404")
    assert (csrf.status_code, csrf.headers["X-Request-ID"]) == (400, "r400")


def test_billing_action_log_line_carries_the_request_id_and_fields(
    client, auth, organisation, billing_log
):
    auth.as_role("admin")
    response = auth.post("/settings/usage/billing-portal", headers={"X-Request-ID": "portal-1"})
    assert response.status_code == 303
    [line] = [
        entry for entry in _lines(billing_log) if entry["message"].startswith("billing portal")
    ]
    assert line["request_id"] == "portal-1"
    assert line["logger"] == "billing_app.billing"
    assert line["level"] == "INFO"
    assert line["organisation"] == "northwind-msp"
    assert line["flow"] == "magic_link"
    assert isinstance(line["member_id"], int)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", line["time"])


def test_log_line_outside_a_request_has_no_request_id(billing_log):
    logging.getLogger("billing_app.billing").info("staff action", extra={"organisation": "x"})
    [line] = _lines(billing_log)
    assert "request_id" not in line and line["organisation"] == "x"


def _format(message: str, *args, extra: dict | None = None, exc_info=None) -> dict:
    record = logging.getLogger("billing_app.billing").makeRecord(
        "billing_app.billing", logging.INFO, __file__, 1, message, args, exc_info, extra=extra
    )
    return json.loads(JsonFormatter().format(record))


def test_secret_values_in_messages_are_redacted():
    line = _format(
        "calling Stripe with %s and %s, signed with %s",
        "sk_live_51Habc123DEF",
        "rk_test_9zz",
        "whsec_AbC123",
    )
    assert "sk_live" not in line["message"] and "rk_test" not in line["message"]
    assert "whsec_" not in line["message"]
    assert line["message"].count(REDACTED) == 3


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("login failed password=hunter2 for ada", "hunter2"),
        ('form {"csrf_token": "IjQ5ZTk1Zj"}', "IjQ5ZTk1Zj"),
        ("Cookie: session=eyJfZnJlc2giOmZhbHNlfQ.ZZ; remember_token=1|abc", "eyJfZnJlc2"),
        ("Cookie: session=eyJfZnJlc2giOmZhbHNlfQ.ZZ; remember_token=1|abc", "1|abc"),
        ("Authorization: Bearer sk_test_local", "sk_test_local"),
        ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
        ("sent with Bearer eyJhbGciOi.x.y", "eyJhbGciOi"),
        ("X-CSRFToken: ImFiYyI.Zz", "ImFiYyI"),
        ("client secret pi_123_secret_456", "pi_123_secret_456"),
    ],
)
def test_secret_assignments_in_text_are_redacted(text, secret):
    assert secret not in redact_text(text)
    assert REDACTED in redact_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "billing email changed: organisation=northwind-msp member=3 source=stripe",
        "Stripe webhook refused: STRIPE_WEBHOOK_SECRET is not configured",
        "moved to the Basic plan; compass=north passed=3",
        "billing portal opened: member=4 organisation=northwind-msp flow=direct",
    ],
)
def test_ordinary_text_is_left_alone(text):
    assert redact_text(text) == text


def test_secret_extra_fields_are_redacted_and_others_kept():
    line = _format(
        "sign-in",
        extra={
            "password": "correct horse",
            "csrf_token": "abc.def",
            "headers": {"Cookie": "session=xyz", "Accept": "text/html"},
            "stripe_key": "sk_test_zzz",
            "email": "ada@northwind.example",
            "attempts": 3,
        },
    )
    assert line["password"] == REDACTED
    assert line["csrf_token"] == REDACTED
    assert line["headers"] == {"Cookie": REDACTED, "Accept": "text/html"}
    assert line["stripe_key"] == REDACTED
    assert line["email"] == "ada@northwind.example"
    assert line["attempts"] == 3
    assert "correct horse" not in json.dumps(line)


def test_exceptions_are_logged_redacted():
    try:
        raise RuntimeError("Stripe refused key sk_live_supersecret")
    except RuntimeError:
        line = _format("Stripe call failed", exc_info=sys.exc_info())
    assert "RuntimeError" in line["exception"]
    assert "sk_live_supersecret" not in line["exception"]


def test_app_logs_json_lines_to_stderr_outside_tests(tmp_path):
    """Outside TESTING, create_app sends the app's logs to stderr as JSON lines."""
    script = """
import logging
from billing_app import create_app
app = create_app()
with app.test_request_context(headers={"X-Request-ID": "from-proxy-1"}):
    app.preprocess_request()
    logging.getLogger("billing_app.billing").info(
        "billing email changed", extra={"organisation": "northwind-msp", "password": "pw"}
    )
    logging.getLogger("billing_app.billing").debug("not at INFO")
"""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "SECRET_KEY": "k" * 32,
        "PETRA_ENV": "development",
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    [line] = [json.loads(text) for text in result.stderr.splitlines()]
    assert line["message"] == "billing email changed"
    assert line["request_id"] == "from-proxy-1"
    assert line["organisation"] == "northwind-msp"
    assert line["password"] == REDACTED
    assert result.stdout == ""
