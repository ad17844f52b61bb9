"""Stripe's customer.updated webhook keeps the billing email in step with Stripe."""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from billing_app.extensions import db
from billing_app.models import Organisation, StripeEvent
from dev.stripe_local import LocalStripe
from tests.billing_email_form import OLD, audit_rows
from tests.factories import unique_email
from tests.pages import email_history
from tests.stripe_events import WEBHOOK, customer_event, deliver, signed, state

pytestmark = pytest.mark.stripe_customer


def open_form(auth) -> dict[str, str]:
    """The hidden fields of the billing-email form as an admin opens it."""
    page = auth.client.get("/settings/usage/billing-email/edit").get_data(as_text=True)
    return dict(re.findall(r'name="(opened_with|nonce)" value="([^"]*)"', page))


def applied_events(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(StripeEvent))


def set_stored(app, email: str, stripe_ts: int | None) -> None:
    with app.app_context():
        organisation = db.session.scalar(
            select(Organisation).where(Organisation.slug == "northwind-msp")
        )
        organisation.billing_email, organisation.billing_email_stripe_ts = email, stripe_ts
        db.session.commit()


# Signatures.


def test_customer_updated_brings_the_new_email_with_a_stripe_audit_event(
    app, client, organisation, billing_log
):
    new, created = unique_email(), int(time.time())
    response = deliver(client, app, customer_event(organisation.stripe_customer_id, new, created))
    assert response.status_code == 200
    assert response.get_json() == {"received": True, "outcome": "applied"}
    assert state(app) == (new, created)
    assert audit_rows(app) == [("stripe", None, OLD, new)]
    assert applied_events(app) == 1
    messages = [r.getMessage() for r in billing_log.records]
    assert any("organisation=northwind-msp" in m and "source=stripe" in m for m in messages)
    assert not any(new in m or app.config["STRIPE_WEBHOOK_SECRET"] in m for m in messages)


def test_the_change_shows_in_the_admins_history_as_stripe(app, client, auth, organisation):
    new = unique_email()
    assert (
        deliver(client, app, customer_event(organisation.stripe_customer_id, new)).status_code
        == 200
    )
    auth.as_role("admin")
    [(_when, who, old, shown)] = email_history(auth.client.get("/settings/usage"))
    assert (who, old, shown) == ("Stripe", OLD, new)


def test_no_csrf_token_is_needed_but_a_signature_is(app, client, organisation):
    event = customer_event(organisation.stripe_customer_id, unique_email())
    assert client.post(WEBHOOK, json=event).status_code == 400
    assert deliver(client, app, event).status_code == 200


BAD_SIGNATURES = {
    "missing": lambda body, secret: {"Content-Type": "application/json"},
    "wrong secret": lambda body, secret: signed(body, "whsec_wrong"),
    "stale": lambda body, secret: signed(body, secret, int(time.time()) - 600),
    "other body": lambda body, secret: signed(body.replace("northwind", "southwind"), secret),
    "garbled": lambda body, secret: {"Stripe-Signature": "t=abc,v1=", "Content-Type": "x"},
}


@pytest.mark.parametrize("kind", sorted(BAD_SIGNATURES))
def test_bad_signature_is_refused_and_changes_nothing(app, client, organisation, kind):
    body = json.dumps(customer_event(organisation.stripe_customer_id, unique_email()))
    headers = BAD_SIGNATURES[kind](body, app.config["STRIPE_WEBHOOK_SECRET"])
    response = client.post(WEBHOOK, data=body, headers=headers)
    assert response.status_code == 400
    assert state(app) == (OLD, None)
    assert audit_rows(app) == []
    assert applied_events(app) == 0


def test_signed_body_that_is_not_json_is_refused(app, client, organisation):
    body = "not json"
    response = client.post(
        WEBHOOK, data=body, headers=signed(body, app.config["STRIPE_WEBHOOK_SECRET"])
    )
    assert response.status_code == 400
    assert applied_events(app) == 0


def test_webhooks_are_refused_without_a_configured_secret(app, client, organisation):
    event = customer_event(organisation.stripe_customer_id, unique_email())
    body = json.dumps(event)
    headers = signed(body, app.config["STRIPE_WEBHOOK_SECRET"])
    app.config["STRIPE_WEBHOOK_SECRET"] = None
    response = client.post(WEBHOOK, data=body, headers=headers)
    assert response.status_code == 503
    assert state(app) == (OLD, None)
    assert audit_rows(app) == []


# Once only, and never older over newer.


def test_a_replayed_event_is_applied_once(app, client, organisation):
    event = customer_event(organisation.stripe_customer_id, unique_email())
    assert deliver(client, app, event).get_json()["outcome"] == "applied"
    set_stored(app, "changed-in-app@northwind.example", event["created"])
    replay = deliver(client, app, event)
    assert replay.status_code == 200
    assert replay.get_json()["outcome"] == "duplicate"
    assert state(app)[0] == "changed-in-app@northwind.example"
    assert len(audit_rows(app)) == 1
    assert applied_events(app) == 1


def test_newer_event_first_then_the_older_one_is_ignored(app, client, organisation):
    now = int(time.time())
    older = customer_event(organisation.stripe_customer_id, unique_email("older"), now - 60)
    newer = customer_event(organisation.stripe_customer_id, unique_email("newer"), now - 10)
    assert deliver(client, app, newer).get_json()["outcome"] == "applied"
    assert deliver(client, app, older).get_json()["outcome"] == "stale"
    newer_email = newer["data"]["object"]["email"]
    assert state(app) == (newer_email, now - 10)
    assert audit_rows(app) == [("stripe", None, OLD, newer_email)]


def test_older_event_first_then_the_newer_one_wins(app, client, organisation):
    now = int(time.time())
    older = customer_event(organisation.stripe_customer_id, unique_email("older"), now - 60)
    newer = customer_event(organisation.stripe_customer_id, unique_email("newer"), now - 10)
    assert deliver(client, app, older).get_json()["outcome"] == "applied"
    assert deliver(client, app, newer).get_json()["outcome"] == "applied"
    older_email, newer_email = older["data"]["object"]["email"], newer["data"]["object"]["email"]
    assert state(app) == (newer_email, now - 10)
    assert audit_rows(app) == [
        ("stripe", None, OLD, older_email),
        ("stripe", None, older_email, newer_email),
    ]


def test_event_from_before_an_app_save_does_not_revert_it(app, client, auth, organisation):
    started = int(time.time())
    auth.as_role("admin")
    fields = open_form(auth)
    saved = unique_email("saved")
    response = auth.post("/settings/usage/billing-email", {"email": saved, **fields}, htmx=True)
    assert response.status_code == 200
    # The save records Stripe's time of the change, like an applied event would.
    assert abs(state(app)[1] - started) <= 5

    portal_change_before_the_save = started - 30
    stale = customer_event(
        organisation.stripe_customer_id, unique_email("portal"), portal_change_before_the_save
    )
    assert deliver(client, app, stale).get_json()["outcome"] == "stale"
    assert state(app)[0] == saved
    # Stripe's own echo of the app's change is no news: no second audit event.
    echo = customer_event(organisation.stripe_customer_id, saved, int(time.time()))
    assert deliver(client, app, echo).get_json()["outcome"] == "unchanged"
    assert [row[0] for row in audit_rows(app)] == ["app"]


def test_change_from_stripe_while_the_form_is_open_is_not_overwritten(
    app, client, auth, organisation
):
    auth.as_role("admin")
    fields = open_form(auth)
    portal = unique_email("portal")
    assert (
        deliver(client, app, customer_event(organisation.stripe_customer_id, portal)).status_code
        == 200
    )
    typed = unique_email("typed")
    response = auth.post("/settings/usage/billing-email", {"email": typed, **fields}, htmx=True)
    assert response.status_code == 409
    assert f"changed meanwhile to {portal}" in response.get_data(as_text=True)
    assert state(app)[0] == portal
    assert [row[0] for row in audit_rows(app)] == ["stripe"]


def test_event_in_the_same_second_is_decided_by_stripes_current_value(
    app, client, organisation, stripe_client
):
    now = int(time.time())
    set_stored(app, OLD, now)
    portal = unique_email("portal")
    # Stripe still has the stored address: the event is from before the stored change.
    first = customer_event(organisation.stripe_customer_id, portal, now)
    assert deliver(client, app, first).get_json()["outcome"] == "stale"
    assert state(app)[0] == OLD
    # Stripe has the event's address: it is the newest change.
    stripe_client.v1.customers.update(organisation.stripe_customer_id, params={"email": portal})
    second = customer_event(organisation.stripe_customer_id, portal, now)
    assert deliver(client, app, second).get_json()["outcome"] == "applied"
    assert state(app) == (portal, now)
    assert audit_rows(app) == [("stripe", None, OLD, portal)]


def test_stripe_unavailable_when_it_must_decide_asks_for_redelivery(
    app, client, organisation, stripe_server
):
    now = int(time.time())
    set_stored(app, OLD, now)
    event = customer_event(organisation.stripe_customer_id, unique_email(), now)
    stripe_server.fault(method="GET", path="^/v1/customers/", status=500, times=1)
    assert deliver(client, app, event).status_code == 503
    assert applied_events(app) == 0
    assert state(app) == (OLD, now)


@pytest.mark.parametrize(
    "event",
    [
        customer_event("cus_unknown", "someone@elsewhere.example"),
        customer_event("cus_any", "x@northwind.example", type="invoice.paid"),
        customer_event("cus_any", "x@northwind.example", type="customer.created"),
    ],
    ids=["unknown customer", "invoice.paid", "customer.created"],
)
def test_unknown_customers_and_other_events_are_acknowledged_and_ignored(
    app, client, organisation, event
):
    if event["data"]["object"]["id"] == "cus_any":
        event["data"]["object"]["id"] = organisation.stripe_customer_id
    response = deliver(client, app, event)
    assert response.status_code == 200
    assert response.get_json()["outcome"] == "ignored"
    assert state(app) == (OLD, None)
    assert audit_rows(app) == []
    assert applied_events(app) == 0


def test_event_without_an_email_is_recorded_but_not_applied(app, client, organisation):
    response = deliver(client, app, customer_event(organisation.stripe_customer_id, None))
    assert response.get_json()["outcome"] == "ignored"
    assert state(app)[0] == OLD
    assert audit_rows(app) == []


@pytest.mark.parametrize("attempt", range(3))
def test_racing_deliveries_of_one_event_apply_it_once(app, organisation, attempt):
    event = customer_event(organisation.stripe_customer_id, unique_email("race"))
    barrier = threading.Barrier(2)
    answers: list = []

    def post() -> None:
        client = app.test_client()
        barrier.wait()
        response = deliver(client, app, event)
        answers.append((response.status_code, response.get_json()["outcome"]))

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(answers) == [(200, "applied"), (200, "duplicate")]
    assert audit_rows(app) == [("stripe", None, OLD, event["data"]["object"]["email"])]
    assert applied_events(app) == 1


# End to end: the local Stripe server sends the webhooks.


@contextlib.contextmanager
def forwarding_webhooks(stripe_server: LocalStripe, url: str, secret: str) -> Iterator[None]:
    """Have the local Stripe server send customer.updated events to `url` while inside."""
    name = "petra-" + uuid.uuid4().hex[:8]
    stripe_server.register_webhook(url, secret, events=["customer.updated"], name=name)
    try:
        yield
    finally:
        stripe_server.register_webhook(url, secret, events=[], name=name)


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


def test_portal_change_reaches_the_app_and_the_apps_own_change_echoes_harmlessly(
    app, auth, organisation, live_server, stripe_server, stripe_client
):
    secret = app.config["STRIPE_WEBHOOK_SECRET"]
    with forwarding_webhooks(stripe_server, f"{live_server.url}{WEBHOOK}", secret):
        session = stripe_client.v1.billing_portal.sessions.create(
            params={"customer": organisation.stripe_customer_id}
        )
        portal = unique_email("portal")
        data = urllib.parse.urlencode({"email": portal}).encode()
        with urllib.request.urlopen(session.url, data=data, timeout=5) as answer:  # noqa: S310
            assert answer.status == 200
        wait_for(lambda: state(app)[0] == portal)
        assert audit_rows(app) == [("stripe", None, OLD, portal)]

        auth.as_role("admin")
        fields = open_form(auth)
        saved = unique_email("saved")
        response = auth.post("/settings/usage/billing-email", {"email": saved, **fields})
        assert response.status_code == 303
        wait_for(lambda: applied_events(app) == 2)  # Stripe's echo of the app's change
    assert state(app)[0] == saved
    assert [row[0] for row in audit_rows(app)] == ["stripe", "app"]
