"""The local Stripe server, exercised through the official Stripe SDK."""

from __future__ import annotations

import html
import http.server
import json
import os
import queue
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
import stripe

from dev.stripe_local import LocalStripe, LocalStripeError

PICKLE = "/tmp/localstripe.pickle"  # noqa: S108


@pytest.fixture(scope="module")
def server() -> Iterator[LocalStripe]:
    with LocalStripe().start() as server:
        yield server


@pytest.fixture(autouse=True)
def _no_faults(server: LocalStripe) -> Iterator[None]:
    server.clear_faults()
    yield
    server.clear_faults()


def make_client(server: LocalStripe, **kwargs) -> stripe.StripeClient:
    return stripe.StripeClient(
        server.api_key,
        base_addresses={"api": server.api_base},
        max_network_retries=0,
        **kwargs,
    )


@pytest.fixture
def client(server: LocalStripe) -> stripe.StripeClient:
    return make_client(server)


def unique_email(prefix: str = "billing") -> str:
    return f"{prefix}+{uuid.uuid4().hex[:10]}@northwind.example"


def fetch(url: str, data: dict | None = None) -> tuple[int, str]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with urllib.request.urlopen(url, data=body, timeout=5) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_health_answers_ok(server: LocalStripe) -> None:
    assert fetch(server.api_base + "/_health") == (200, "ok")


def test_api_needs_a_secret_key(server: LocalStripe) -> None:
    with pytest.raises(stripe.AuthenticationError):
        stripe.StripeClient(
            "pk_test_local", base_addresses={"api": server.api_base}, max_network_retries=0
        ).v1.customers.list()
    status, body = fetch(server.api_base + "/v1/billing_portal/sessions", {"customer": "cus_x"})
    assert status == 401
    assert json.loads(body)["error"]["type"] == "invalid_request_error"


def test_portal_session_has_stripes_shape_and_opens_a_page(
    server: LocalStripe, client: stripe.StripeClient
) -> None:
    email = unique_email()
    customer = client.v1.customers.create(params={"email": email, "name": "Ada & Co <MSP>"})
    return_url = "http://127.0.0.1:5000/settings/usage?a=1&b=2"

    session = client.v1.billing_portal.sessions.create(
        params={"customer": customer.id, "return_url": return_url}
    )

    assert isinstance(session, stripe.billing_portal.Session)
    assert session.id.startswith("bps_")
    assert session.object == "billing_portal.session"
    assert session.customer == customer.id
    assert session.return_url == return_url
    assert session.configuration.startswith("bpc_")
    assert session.livemode is False
    assert session.flow is None and session.locale is None and session.on_behalf_of is None
    assert abs(session.created - time.time()) < 60
    assert session.url == f"{server.api_base}/p/session/{session.id}"

    status, page = fetch(session.url)
    assert status == 200
    assert "Petra test billing portal" in page
    assert html.escape(email) in page
    assert "Ada &amp; Co &lt;MSP&gt;" in page and "<MSP>" not in page
    assert f'href="{html.escape(return_url)}">Return to Petra</a>' in page


def test_portal_session_echoes_flow_and_locale(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"email": unique_email()})
    session = client.v1.billing_portal.sessions.create(
        params={
            "customer": customer.id,
            "return_url": "http://127.0.0.1:5000/settings/usage",
            "locale": "de",
            "flow_data": {
                "type": "payment_method_update",
                "after_completion": {
                    "type": "redirect",
                    "redirect": {"return_url": "http://127.0.0.1:5000/done"},
                },
            },
        }
    )
    assert session.locale == "de"
    assert session.flow.type == "payment_method_update"
    assert session.flow.after_completion.type == "redirect"
    assert session.flow.after_completion.redirect.return_url == "http://127.0.0.1:5000/done"


def test_portal_session_for_an_unknown_customer_is_refused(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.billing_portal.sessions.create(
            params={"customer": "cus_missing", "return_url": "http://127.0.0.1:5000/"}
        )
    error = caught.value
    assert error.http_status == 400
    assert error.code == "resource_missing"
    assert error.param == "customer"
    assert error.user_message == "No such customer: 'cus_missing'"


@pytest.mark.parametrize(
    ("params", "param", "code"),
    [
        ({"return_url": "http://127.0.0.1:5000/"}, "customer", "parameter_missing"),
        ({"customer": "{customer}", "return_url": "not a url"}, "return_url", "url_invalid"),
        ({"customer": "{customer}", "colour": "red"}, "colour", None),
        ({"customer": "{customer}", "flow_data": {"type": "nope"}}, "flow_data[type]", None),
    ],
)
def test_bad_portal_session_params_are_refused(
    client: stripe.StripeClient, params: dict, param: str, code: str | None
) -> None:
    customer = client.v1.customers.create(params={"email": unique_email()})
    if params.get("customer") == "{customer}":
        params = {**params, "customer": customer.id}
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.billing_portal.sessions.create(params=params)
    assert caught.value.http_status == 400
    assert caught.value.param == param
    assert caught.value.code == code


def test_unknown_customer_is_resource_missing(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.retrieve("cus_nobody")
    assert caught.value.http_status == 404
    assert caught.value.code == "resource_missing"
    assert "cus_nobody" in caught.value.user_message


def test_unknown_portal_session_is_a_404_page(server: LocalStripe) -> None:
    status, page = fetch(server.api_base + "/p/session/bps_doesnotexist")
    assert status == 404
    assert "expired" in page


def test_portal_session_link_expires() -> None:
    with LocalStripe(portal_session_ttl=0.5).start() as short:
        client = make_client(short)
        customer = client.v1.customers.create(params={"email": unique_email()})
        session = client.v1.billing_portal.sessions.create(params={"customer": customer.id})
        assert fetch(session.url)[0] == 200
        time.sleep(0.7)
        assert fetch(session.url)[0] == 404


def test_instances_keep_separate_state_and_no_pickle(
    server: LocalStripe, client: stripe.StripeClient
) -> None:
    pickle_before = os.stat(PICKLE).st_mtime_ns if os.path.exists(PICKLE) else None
    email = unique_email("separate")
    with LocalStripe().start() as other:
        make_client(other).v1.customers.create(params={"email": email})
        assert len(make_client(other).v1.customers.list(params={"email": email}).data) == 1
    assert client.v1.customers.list(params={"email": email}).data == []
    pickle_after = os.stat(PICKLE).st_mtime_ns if os.path.exists(PICKLE) else None
    assert pickle_after == pickle_before


def test_idempotency_key_replays_the_first_response(
    server: LocalStripe, client: stripe.StripeClient
) -> None:
    email = unique_email("idem")
    key = str(uuid.uuid4())
    server.clear_requests()

    first = client.v1.customers.create(params={"email": email}, options={"idempotency_key": key})
    second = client.v1.customers.create(params={"email": email}, options={"idempotency_key": key})

    assert second.id == first.id
    assert second.last_response.headers.get("Idempotent-Replayed") == "true"
    assert first.last_response.headers.get("Idempotent-Replayed") is None
    assert len(client.v1.customers.list(params={"email": email}).data) == 1
    logged = server.requests("/v1/customers")
    assert [r["idempotency_key"] for r in logged[:2]] == [key, key]
    assert [r["idempotent_replayed"] for r in logged[:2]] == [False, True]


def test_idempotency_key_reused_with_other_params_is_refused(client: stripe.StripeClient) -> None:
    key = str(uuid.uuid4())
    client.v1.customers.create(params={"email": unique_email()}, options={"idempotency_key": key})
    with pytest.raises(stripe.IdempotencyError) as caught:
        client.v1.customers.create(
            params={"email": unique_email()}, options={"idempotency_key": key}
        )
    assert caught.value.http_status == 400
    assert key in caught.value.user_message


def test_idempotency_keys_are_per_api_key(server: LocalStripe, client: stripe.StripeClient) -> None:
    email = unique_email("perkey")
    key = str(uuid.uuid4())
    other = stripe.StripeClient(
        "sk_test_other", base_addresses={"api": server.api_base}, max_network_retries=0
    )
    first = client.v1.customers.create(params={"email": email}, options={"idempotency_key": key})
    second = other.v1.customers.create(params={"email": email}, options={"idempotency_key": key})
    assert second.id != first.id


def test_faulted_request_is_not_remembered_for_its_idempotency_key(
    server: LocalStripe, client: stripe.StripeClient
) -> None:
    email = unique_email("retry")
    key = str(uuid.uuid4())
    server.fault(method="POST", path="^/v1/customers$", status=500, times=1)
    with pytest.raises(stripe.APIError):
        client.v1.customers.create(params={"email": email}, options={"idempotency_key": key})
    customer = client.v1.customers.create(params={"email": email}, options={"idempotency_key": key})
    assert customer.email == email
    assert customer.last_response.headers.get("Idempotent-Replayed") is None


def test_fault_500_is_an_api_error_that_should_not_be_retried(
    server: LocalStripe, client: stripe.StripeClient
) -> None:
    customer = client.v1.customers.create(params={"email": unique_email()})
    server.fault(method="POST", path="^/v1/customers/", status=500, error={"message": "Down"})
    with pytest.raises(stripe.APIError) as caught:
        client.v1.customers.update(customer.id, params={"email": unique_email()})
    assert caught.value.http_status == 500
    assert caught.value.user_message == "Down"
    assert caught.value.headers["Stripe-Should-Retry"] == "false"
    assert client.v1.customers.retrieve(customer.id).email == customer.email

    server.clear_faults()
    new_email = unique_email()
    assert client.v1.customers.update(customer.id, params={"email": new_email}).email == new_email


def test_fault_429_is_a_rate_limit_error(server: LocalStripe, client: stripe.StripeClient) -> None:
    server.fault(path="^/v1/billing_portal/sessions$", status=429, retry_after=2)
    with pytest.raises(stripe.RateLimitError) as caught:
        client.v1.billing_portal.sessions.create(params={"customer": "cus_any"})
    assert caught.value.http_status == 429
    assert caught.value.headers["Retry-After"] == "2"


def test_fault_402_is_a_card_error(server: LocalStripe, client: stripe.StripeClient) -> None:
    server.fault(method="POST", path="^/v1/customers$", status=402)
    with pytest.raises(stripe.CardError) as caught:
        client.v1.customers.create(params={"email": unique_email()})
    assert caught.value.code == "card_declined"


def test_fault_method_and_times_are_honoured(
    server: LocalStripe, client: stripe.StripeClient
) -> None:
    server.fault(method="GET", path="^/v1/customers$", status=503, times=2)
    assert client.v1.customers.create(params={"email": unique_email()}).id.startswith("cus_")
    for _ in range(2):
        with pytest.raises(stripe.APIError):
            client.v1.customers.list()
    assert server.faults() == []
    assert client.v1.customers.list().object == "list"


def test_fault_delay_beyond_the_client_timeout_is_a_connection_error(
    server: LocalStripe,
) -> None:
    client = make_client(server, http_client=stripe.RequestsClient(timeout=0.5))
    server.fault(method="GET", path="^/v1/customers$", delay=3, times=1)
    started = time.monotonic()
    with pytest.raises(stripe.APIConnectionError):
        client.v1.customers.list()
    # Given up at the client's timeout, well before the answer would have come.
    assert time.monotonic() - started < 2.5


def test_fault_with_only_a_delay_serves_the_real_answer(
    server: LocalStripe, client: stripe.StripeClient
) -> None:
    server.fault(method="POST", path="^/v1/customers$", delay=0.3)
    started = time.monotonic()
    email = unique_email("slow")
    customer = client.v1.customers.create(params={"email": email})
    assert time.monotonic() - started >= 0.3
    assert customer.email == email


@pytest.mark.parametrize(
    "rule",
    [
        {"path": "(", "status": 500},
        {"path": "^/v1/", "status": 200},
        {"path": "^/v1/"},
        {"status": 500},
        {"path": "^/v1/", "status": 500, "colour": "red"},
    ],
)
def test_bad_fault_rules_are_refused(server: LocalStripe, rule: dict) -> None:
    with pytest.raises(LocalStripeError, match="400"):
        server.fault(**rule)
    assert server.faults() == []


@pytest.mark.parametrize(
    "email", ["billing+eu@x.example", 'o"brien<script>@x.example', "ops@northwind.example"]
)
def test_login_page_prefills_the_email_escaped(server: LocalStripe, email: str) -> None:
    query = urllib.parse.urlencode({"prefilled_email": email})
    status, page = fetch(f"{server.portal_login_url}?{query}")
    assert status == 200
    assert f'id="email" name="email" value="{html.escape(email)}"' in page
    assert "<script>" not in page
    assert "Send link</button>" in page


def test_login_form_says_check_your_email(server: LocalStripe) -> None:
    status, page = fetch(server.portal_login_url, {"email": "a<b@x.example"})
    assert status == 200
    assert "Check your email" in page
    assert "a&lt;b@x.example" in page
    assert fetch(server.portal_login_url, {"email": ""})[0] == 400


def test_request_log_records_api_requests(server: LocalStripe, client: stripe.StripeClient) -> None:
    server.clear_requests()
    email = unique_email("log")
    customer = client.v1.customers.create(
        params={"email": email, "metadata": {"organisation": "northwind-msp"}},
        options={"idempotency_key": "log-" + email},
    )
    client.v1.customers.retrieve(customer.id)
    fetch(server.api_base + "/_health")

    logged = server.requests()
    assert [(r["method"], r["path"]) for r in logged] == [
        ("POST", "/v1/customers"),
        ("GET", f"/v1/customers/{customer.id}"),
    ]
    assert logged[0]["params"] == {"email": email, "metadata": {"organisation": "northwind-msp"}}
    assert logged[0]["idempotency_key"] == "log-" + email
    assert logged[0]["status"] == 200
    assert logged[0]["timestamp"] <= logged[1]["timestamp"]
    assert server.requests("/v1/billing_portal") == []

    server.clear_requests()
    assert server.requests() == []


def test_clearing_data_forgets_customers_and_sessions() -> None:
    with LocalStripe().start() as scratch:
        client = make_client(scratch)
        customer = client.v1.customers.create(params={"email": unique_email()})
        session = client.v1.billing_portal.sessions.create(params={"customer": customer.id})
        scratch.clear_data()
        assert client.v1.customers.list().data == []
        assert fetch(session.url)[0] == 404


def test_binds_to_ipv4_loopback_only(server: LocalStripe) -> None:
    assert server.api_base.startswith("http://127.0.0.1:")
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        assert sock.connect_ex(("::1", server.port)) != 0


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: queue.Queue

    def do_POST(self) -> None:
        payload = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.put((payload, self.headers["Stripe-Signature"]))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_portal_email_change_sends_a_signed_customer_updated_webhook(
    server: LocalStripe, client: stripe.StripeClient
) -> None:
    received: queue.Queue = queue.Queue()
    handler = type("Receiver", (_Receiver,), {"received": received})
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    secret = "whsec_test_local"
    try:
        server.register_webhook(
            f"http://127.0.0.1:{receiver.server_port}/webhooks/stripe",
            secret,
            events=["customer.updated"],
            name="test-portal",
        )
        customer = client.v1.customers.create(params={"email": unique_email()})
        session = client.v1.billing_portal.sessions.create(params={"customer": customer.id})
        new_email = unique_email("portal")

        status, page = fetch(session.url, {"email": new_email})

        assert status == 200
        assert html.escape(new_email) in page
        assert client.v1.customers.retrieve(customer.id).email == new_email
        payload, signature = received.get(timeout=5)
        event = stripe.Webhook.construct_event(payload, signature, secret)
        assert event.type == "customer.updated"
        assert event.data.object.id == customer.id
        assert event.data.object.email == new_email
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(payload, signature, "whsec_wrong")
    finally:
        receiver.shutdown()
        receiver.server_close()
