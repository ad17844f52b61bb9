"""Hostile requests change nothing: oversized bodies, signed webhooks of shapes Stripe never
sends, foreign Host headers, a per-process rate-limit store in production, and import files
built to crash the importer."""

from __future__ import annotations

import json
import socket
import time

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from billing_app import create_app
from billing_app.config import ConfigError, from_environment
from billing_app.extensions import db
from billing_app.models import AuditEvent, StripeEvent
from tests.billing_email_form import OLD
from tests.conftest import app_config
from tests.factories import Auth, update_organisation
from tests.stripe_events import customer_event, deliver, signed, state

pytestmark = pytest.mark.stripe_customer

LIMIT = 1024 * 1024


class Body:
    """A request body of `size` bytes that counts how much of it the app reads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.read_bytes = 0

    def read(self, n: int = -1) -> bytes:
        left = self.size - self.read_bytes
        n = left if n is None or n < 0 else min(n, left)
        self.read_bytes += n
        return b"a" * n

    def readline(self, limit: int = -1) -> bytes:
        return self.read(limit if limit and limit > 0 else 65536)


def _post_large(client, path: str, size: int, **headers):
    body = Body(size)
    environ = {
        "wsgi.input": body,
        "CONTENT_LENGTH": str(size),
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
    }
    response = client.post(path, headers=headers, environ_overrides=environ)
    return response, body


# Bodies over 1 MB.


@pytest.mark.parametrize("path", ["/login", "/webhooks/stripe", "/logout", "/healthz"])
def test_an_anonymous_body_over_1_mb_is_refused_with_413_before_it_is_read(
    client, organisation, path
):
    response, body = _post_large(client, path, 2 * LIMIT)
    assert response.status_code == 413
    assert body.read_bytes == 0
    assert "too large" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "path",
    ["/settings/usage/billing-email", "/settings/usage/billing-portal", "/logout"],
)
def test_a_members_body_over_1_mb_is_refused_with_413_and_changes_nothing(
    app, auth, organisation, stripe_server, path
):
    auth.as_role("admin")
    stripe_server.clear_requests()
    response, body = _post_large(
        auth.client, path, 200 * LIMIT, **{"HX-Request": "true", "X-CSRFToken": auth.csrf_token}
    )
    assert response.status_code == 413
    assert body.read_bytes == 0
    assert stripe_server.requests("/v1/") == []
    assert state(app)[0] == OLD
    assert auth.client.get("/settings/usage").status_code == 200  # still signed in


def test_a_body_under_the_limit_is_read_as_usual(client, organisation):
    response = client.post("/login", data={"email": "x@x.example", "padding": "a" * 400_000})
    assert response.status_code == 400  # no CSRF token; not refused for its size


def test_the_limit_is_a_setting_of_the_app(app):
    assert app.config["MAX_CONTENT_LENGTH"] == LIMIT


# Signed webhooks of shapes Stripe never sends.


def _event(**changes) -> dict:
    return customer_event("cus_placeholder", "new@northwind.example") | changes


MALFORMED = {
    "a list": [],
    "null": None,
    "a number": 1,
    "a string": "evt_1",
    "no data": {k: v for k, v in _event().items() if k != "data"},
    "data null": _event(data=None),
    "data a list": _event(data=[]),
    "no object": _event(data={}),
    "object a string": _event(data={"object": "cus_1"}),
    "no id": {k: v for k, v in _event().items() if k != "id"},
    "id a number": _event(id=12),
    "id too long": _event(id="evt_" + "x" * 300),
    "no type": {k: v for k, v in _event().items() if k != "type"},
    "type a list": _event(type=["customer.updated"]),
    "created a string": _event(created="1700000000"),
    "created a boolean": _event(created=True),
    "created a float": _event(created=1700000000.5),
    "created huge": _event(created=10**30),
    "created negative": _event(created=-1),
    "created next year": _event(created=int(time.time()) + 366 * 86400),
    "not an event": _event(object="customer"),
    "customer without id": _event(data={"object": {"object": "customer", "email": "a@b.example"}}),
    "customer id a number": _event(data={"object": {"id": 7, "object": "customer"}}),
    "not a customer": _event(data={"object": {"id": "in_1", "object": "invoice"}}),
}


@pytest.mark.parametrize("payload", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_signed_event_of_a_shape_stripe_never_sends_is_refused_with_400(
    app, client, organisation, payload
):
    if isinstance(payload, dict) and isinstance(payload.get("data"), dict):
        customer = payload["data"].get("object")
        if isinstance(customer, dict) and customer.get("id") == "cus_placeholder":
            customer["id"] = organisation.stripe_customer_id
    response = deliver(client, app, payload)
    assert response.status_code == 400
    assert state(app) == (OLD, None)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(StripeEvent)) == 0


@pytest.mark.parametrize("body", ["[" * 100_000 + "]" * 100_000, '{"id": ', "\udcff", "NaN"])
def test_a_signed_body_that_is_not_json_is_refused_with_400(app, client, organisation, body):
    secret = app.config["STRIPE_WEBHOOK_SECRET"]
    data = body.encode("utf-8", "surrogateescape")
    response = client.post(
        "/webhooks/stripe",
        data=data,
        headers=signed(data.decode("utf-8", "replace"), secret),
    )
    assert response.status_code == 400
    assert state(app) == (OLD, None)


@pytest.mark.parametrize(
    "email",
    [
        "not-an-address",
        "new@northwind.example\r\nBcc: eve@evil.example",
        "new@northwind.example\n",
        "Eve <eve@evil.example>",
        '"eve"@evil.example',
        "eve@[192.0.2.1]",
        "a" * 250 + "@b.example",
        "",
        42,
        ["new@northwind.example"],
    ],
)
def test_a_signed_address_that_breaks_the_billing_email_rules_is_logged_not_applied(
    app, client, organisation, billing_log, email
):
    response = deliver(client, app, customer_event(organisation.stripe_customer_id, email))
    assert response.status_code == 200
    assert response.get_json()["outcome"] == "ignored"
    assert state(app)[0] == OLD
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == 0
    assert "billing email from Stripe not usable" in billing_log.text
    assert "eve@" not in billing_log.text


def test_a_signed_address_from_stripe_is_applied_normalised(app, client, organisation):
    event = customer_event(organisation.stripe_customer_id, "  Accounts@NorthWind.EXAMPLE ")
    response = deliver(client, app, event)
    assert response.get_json()["outcome"] == "applied"
    assert state(app)[0] == "Accounts@northwind.example"


def test_an_event_of_another_type_in_stripes_shape_is_accepted_and_ignored(
    app, client, organisation
):
    event = customer_event(organisation.stripe_customer_id, None, type="invoice.created")
    event["data"] = {"object": {"id": "in_1", "object": "invoice"}}
    response = deliver(client, app, event)
    assert response.status_code == 200
    assert response.get_json()["outcome"] == "ignored"


# Host names.


@pytest.fixture
def hosted(_schema, stripe_server, monkeypatch):
    """The app configured from the environment to answer billing.petra.example (its
    SERVER_NAME) and petra-internal.example (a further trusted host), and no other."""
    monkeypatch.setenv("SERVER_NAME", "billing.petra.example")
    monkeypatch.setenv("TRUSTED_HOSTS", "petra-internal.example")
    config = app_config(_schema, stripe_server)
    del config["SERVER_NAME"]
    return create_app(config)


class HostClient(FlaskClient):
    """A test client whose requests carry the Host header `host` unless told otherwise."""

    host = "localhost"

    def open(self, *args, **kwargs):
        overrides = kwargs.setdefault("environ_overrides", {})
        overrides.setdefault("HTTP_HOST", self.host)
        return super().open(*args, **kwargs)


def _client(app, host: str) -> HostClient:
    client = HostClient(app, app.response_class, use_cookies=True)
    client.host = host
    return client


@pytest.mark.parametrize("path", ["/login", "/healthz", "/settings/usage"])
def test_a_request_for_an_unknown_host_is_refused_with_400(hosted, organisation, path):
    assert _client(hosted, "evil.example").get(path).status_code == 400
    assert _client(hosted, "billing.petra.example.evil.example").get(path).status_code == 400
    assert _client(hosted, "billing.petra.example").get(path).status_code in (200, 302)
    assert _client(hosted, "petra-internal.example:8000").get(path).status_code in (200, 302)


def test_the_portal_returns_to_the_configured_host_whatever_host_was_asked(
    app, hosted, organisation, stripe_server
):
    update_organisation(app, portal_direct_access=True)
    member = Auth(_client(hosted, "petra-internal.example")).as_role("admin")
    stripe_server.clear_requests()
    response = member.post("/settings/usage/billing-portal")
    assert response.status_code == 303
    (created,) = [
        r for r in stripe_server.requests("/v1/billing_portal/sessions") if r["method"] == "POST"
    ]
    assert created["params"]["return_url"] == "http://billing.petra.example/settings/usage"

    stripe_server.clear_requests()
    forged = member.post(
        "/settings/usage/billing-portal", environ_overrides={"HTTP_HOST": "evil.example"}
    )
    assert forged.status_code == 400
    assert stripe_server.requests("/v1/billing_portal/sessions") == []


def test_host_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("SERVER_NAME", raising=False)
    monkeypatch.setenv("TRUSTED_HOSTS", " Billing.Petra.example , .petra.example ,")
    settings = from_environment(tmp_path)
    assert settings["TRUSTED_HOSTS"] == ["billing.petra.example", ".petra.example"]
    assert settings["SERVER_NAME"] is None
    monkeypatch.delenv("TRUSTED_HOSTS")
    assert from_environment(tmp_path)["TRUSTED_HOSTS"] is None  # any, in development


# Production settings.


@pytest.fixture
def production(monkeypatch, tmp_path):
    monkeypatch.setenv("PETRA_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "s" * 32)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_x")
    monkeypatch.setenv("RATELIMIT_STORAGE_URI", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("SERVER_NAME", "billing.petra.example")
    monkeypatch.setenv("PUBLIC_URL", "https://billing.petra.example")
    monkeypatch.delenv("TRUSTED_HOSTS", raising=False)
    return monkeypatch


@pytest.mark.parametrize("storage", [None, "", "memory://", " memory:// ", "memory://x"])
def test_production_refuses_a_rate_limit_store_of_each_process(production, tmp_path, storage):
    if storage is None:
        production.delenv("RATELIMIT_STORAGE_URI")
    else:
        production.setenv("RATELIMIT_STORAGE_URI", storage)
    with pytest.raises(ConfigError, match="shared rate-limit store"):
        from_environment(tmp_path)


def test_production_refuses_to_answer_any_host(production, tmp_path):
    production.delenv("SERVER_NAME")
    with pytest.raises(ConfigError, match="SERVER_NAME or TRUSTED_HOSTS"):
        from_environment(tmp_path)
    production.setenv("TRUSTED_HOSTS", "billing.petra.example")
    assert from_environment(tmp_path)["TRUSTED_HOSTS"] == ["billing.petra.example"]


def test_production_starts_with_redis_limits_and_a_server_name(production, tmp_path):
    settings = from_environment(tmp_path)
    assert settings["RATELIMIT_STORAGE_URI"] == "redis://127.0.0.1:6379/0"
    assert settings["SERVER_NAME"] == "billing.petra.example"
    assert settings["TRUSTED_HOSTS"] == ["billing.petra.example"]


# Import files built to crash the importer.


def _import(app, tmp_path, text: str | bytes):
    path = tmp_path / "hostile.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return app.test_cli_runner().invoke(args=["usage", "import", str(path)])


def _one_line_refusal(result) -> str:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


def test_a_deeply_nested_import_file_is_refused_with_one_line(app, tmp_path):
    result = _import(app, tmp_path, "[" * 200_000 + "]" * 200_000)
    assert "nested far too deeply" in _one_line_refusal(result)


def test_a_deeply_nested_field_is_refused_naming_its_entry(app, tmp_path):
    deep = "[" * 500 + "]" * 500
    result = _import(app, tmp_path, '{"organisation": {"slug": ' + deep + "}}")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "organisation" in result.output and '"slug" must be a string' in result.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"organisation": ' + "9" * 5000 + "}", "not valid JSON"),
        ('{"organisation": NaN}', "not valid JSON"),
        ('{"organisation": -Infinity}', "not valid JSON"),
        (b'{"organisation": "\xff"}', "not UTF-8"),
    ],
)
def test_an_import_file_of_hostile_values_is_refused_with_one_line(app, tmp_path, text, message):
    assert message in _one_line_refusal(_import(app, tmp_path, text))


def test_a_good_import_file_still_imports(app, tmp_path):
    data = {
        "organisation": {"slug": "tailspin", "name": "Tailspin", "billing_email": "ap@t.example"}
    }
    result = _import(app, tmp_path, json.dumps(data))
    assert result.exit_code == 0, result.output
    assert "tailspin" in result.output


# The same through gunicorn, as a client would send them.


def _raw_post(server, head: str, chunks) -> str:
    """Send a request head and body chunks on a socket until the server answers; its status
    line (the server may stop reading, and close, long before the body is sent)."""
    with socket.create_connection((server.host, server.port), timeout=30) as connection:
        connection.sendall(head.encode())
        try:
            for chunk in chunks:
                connection.sendall(chunk)
        except OSError:
            pass
        answer = b""
        try:
            while b"\r\n" not in answer:
                data = connection.recv(4096)
                if not data:
                    break
                answer += data
        except OSError:
            pass
    return answer.split(b"\r\n", 1)[0].decode()


def test_gunicorn_refuses_a_declared_200_mb_body_without_reading_it(served):
    head = (
        "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {200 * LIMIT}\r\n\r\n"
    )
    started = time.monotonic()
    status = _raw_post(served, head, [b"a" * 65536])
    assert status.split(" ")[1] == "413", status
    assert time.monotonic() - started < 10


def test_gunicorn_refuses_a_chunked_body_at_1_mb(served):
    head = (
        "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"a" * 65536
    chunks = [b"%x\r\n" % len(chunk) + chunk + b"\r\n"] * 64 + [b"0\r\n\r\n"]  # 4 MB
    status = _raw_post(served, head, chunks)
    assert status.split(" ")[1] == "413", status
