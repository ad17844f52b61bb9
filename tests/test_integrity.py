"""'Saved' only when Stripe and Petra hold the address: resubmitted forms, replayed Stripe
answers, and two admins saving at once, on SQLite and PostgreSQL, through real servers."""

from __future__ import annotations

import html
import re
import threading
import time
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from billing_app.billing_email import history as billing_email
from billing_app.billing_email.saving import idempotency_key
from billing_app.extensions import db
from billing_app.models import AuditEvent, Member, Organisation
from tests.billing_email_form import (
    OLD,
    audit_rows,
    email_updates,
    hidden_fields,
    open_form,
    save,
    stored_email,
    stripe_email,
)
from tests.factories import Auth, unique_email
from tests.gunicorn import Gunicorn

pytestmark = pytest.mark.stripe_customer

SECOND_ADMIN = "ops@northwind-msp.example"


def add_second_admin(app, organisation) -> None:
    with app.app_context():
        fresh = db.session.get(Organisation, organisation.id)
        second = Member(email=SECOND_ADMIN, name="Ops", role="admin")
        second.password_hash = fresh.members[0].password_hash
        fresh.members.append(second)
        db.session.commit()


def signed_in_admins(app, organisation) -> tuple[Auth, Auth]:
    add_second_admin(app, organisation)
    first = Auth(app.test_client()).as_role("admin")
    second = Auth(app.test_client())
    assert second.login(SECOND_ADMIN).status_code == 303
    return first, second


# One intended change, one key; a replay is not a change.


def test_resubmitted_form_after_another_admin_restored_the_address_is_not_saved(
    app, organisation, stripe_client, stripe_server
):
    first, second = signed_in_admins(app, organisation)
    first_form = open_form(first)
    new = unique_email("first")
    assert save(first, new, first_form).status_code == 200
    assert save(second, OLD, open_form(second), confirm_shared=OLD).status_code == 200
    assert stored_email(app) == stripe_email(stripe_client, organisation) == OLD

    # The first admin sends the first form's fields again (back button, resubmit).
    response = save(first, new, first_form)
    text = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 409
    assert "Saved." not in text
    assert "This form was saved once already" in text and f"it is now {OLD}" in text
    assert stored_email(app) == OLD
    assert stripe_email(stripe_client, organisation) == OLD
    assert len(audit_rows(app)) == 2

    # Saving the reopened form is a new change, with a key of its own.
    reopened = hidden_fields(response.get_data(as_text=True))
    assert reopened["opened_with"] == OLD and reopened["nonce"] != first_form["nonce"]
    again = save(first, new, reopened)
    assert again.status_code == 200
    assert stored_email(app) == stripe_email(stripe_client, organisation) == new
    keys = [update["idempotency_key"] for update in email_updates(stripe_server, organisation)]
    assert len(keys) == len(set(keys)) == 3


def test_save_again_after_a_timeout_does_not_take_a_replayed_answer_for_a_change(
    app, auth, organisation, stripe_client, stripe_server
):
    """Stripe took the timed-out request late, the address was set back at Stripe meanwhile:
    'Save again' gets the replay of the first answer, and must not call that saved."""
    auth.as_role("admin")
    form = open_form(auth)
    new = unique_email()
    path = f"^/v1/customers/{organisation.stripe_customer_id}$"
    stripe_server.fault(method="POST", path=path, delay=2.5, times=1)
    response = save(auth, new, form)
    assert response.status_code == 504
    deadline = time.monotonic() + 5
    while stripe_email(stripe_client, organisation) != new:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    stripe_client.v1.customers.update(organisation.stripe_customer_id, params={"email": OLD})

    retry = save(auth, new, hidden_fields(response.get_data(as_text=True)))
    text = html.unescape(retry.get_data(as_text=True))
    assert retry.status_code == 409
    assert "Saved." not in text and f"it is now {OLD}" in text
    assert stored_email(app) == OLD
    assert stripe_email(stripe_client, organisation) == OLD
    assert audit_rows(app) == []
    replayed = [u for u in email_updates(stripe_server, organisation) if u["idempotent_replayed"]]
    assert len(replayed) == 1
    assert replayed[0]["idempotency_key"] == idempotency_key(
        organisation.stripe_customer_id, OLD, new, form["nonce"]
    )
    # The reopened form saves it for real.
    again = save(auth, new, hidden_fields(retry.get_data(as_text=True)))
    assert again.status_code == 200
    assert stored_email(app) == stripe_email(stripe_client, organisation) == new


def test_replay_is_checked_against_the_customer_before_the_database_changes(
    app, auth, organisation, stripe_client, stripe_server
):
    """After a replayed answer the customer is retrieved, and only then is Petra written."""
    auth.as_role("admin")
    form = open_form(auth)
    new = unique_email()
    path = f"^/v1/customers/{organisation.stripe_customer_id}$"
    stripe_server.fault(method="POST", path=path, delay=2.5, times=1)
    assert save(auth, new, form).status_code == 504
    deadline = time.monotonic() + 5
    while stripe_email(stripe_client, organisation) != new:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    stripe_server.clear_requests()
    assert save(auth, new, form).status_code == 200
    requests = stripe_server.requests(f"/v1/customers/{organisation.stripe_customer_id}")
    assert [(r["method"], r["idempotent_replayed"]) for r in requests] == [
        ("POST", True),
        ("GET", False),
    ]
    assert stored_email(app) == new


def test_a_form_saves_once_even_where_stripe_remembers_no_key(
    app, organisation, stripe_client, stripe_server
):
    """Stripe keeps idempotency keys for a day, per customer and change; a form resubmitted
    where no key applies is still refused, because Petra records the form of each change."""
    first, second = signed_in_admins(app, organisation)
    first_form = open_form(first)
    new = unique_email("first")
    assert save(first, new, first_form).status_code == 200
    assert save(second, OLD, open_form(second), confirm_shared=OLD).status_code == 200
    # Staff link the organisation to another customer: no key Stripe remembers applies.
    customer = stripe_client.v1.customers.create(params={"email": OLD})
    with app.app_context():
        db.session.get(Organisation, organisation.id).stripe_customer_id = customer.id
        db.session.commit()

    response = save(first, new, first_form)
    assert response.status_code == 409
    assert stored_email(app) == OLD
    assert stripe_client.v1.customers.retrieve(customer.id).email == OLD
    with app.app_context():
        forms = db.session.scalars(
            select(AuditEvent.detail).where(AuditEvent.action == billing_email.AUDIT_ACTION)
        ).all()
    assert first_form["nonce"] in [detail.get("form") for detail in forms]


def test_a_key_still_being_answered_may_still_land(app, auth, organisation, stripe_server):
    """Stripe answers 409 while the first request with a key is in progress: the admin is told
    the change may still land and that saving again will not make it twice; nothing is stored
    until Stripe has made it."""
    auth.as_role("admin")
    form = open_form(auth)
    new = unique_email()
    path = f"^/v1/customers/{organisation.stripe_customer_id}$"
    stripe_server.fault(method="POST", path=path, delay=3.5, times=1)
    assert save(auth, new, form).status_code == 504
    response = save(auth, new, form)  # the first is still held at Stripe
    text = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "It may still go through" in text and "will not be made twice" in text
    assert "Stripe is busy" not in text
    assert stored_email(app) == OLD


# Two admins at once, through two gunicorn worker processes.


def _request(server: Gunicorn, method: str, path: str, cookie: str = "", **kwargs):
    headers = kwargs.pop("headers", {})
    if cookie:
        headers["Cookie"] = cookie
    return server.request(method, path, headers=headers, **kwargs)


def _sign_in(server: Gunicorn, email: str) -> tuple[str, str]:
    """Sign in over HTTP: the session cookie and the page's CSRF token."""
    status, headers, body = server.request("GET", "/login")
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', body).group(1)
    form = urlencode({"email": email, "password": "correct horse battery staple"})
    status, headers, body = _request(
        server,
        "POST",
        "/login",
        cookie,
        body=form + "&" + urlencode({"csrf_token": token}),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 303, body
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    status, headers, body = _request(server, "GET", "/settings/usage", cookie)
    assert status == 200, body
    cookie = headers.get("Set-Cookie", cookie).split(";", 1)[0]  # now with its CSRF secret
    return cookie, re.search(r'"X-CSRFToken": "([^"]+)"', body).group(1)


def test_two_admins_saving_at_once_end_with_one_winner_who_is_told_so(
    app, organisation, served, stripe_client, stripe_server
):
    add_second_admin(app, organisation)
    admins = [_sign_in(served, "admin@northwind-msp.example"), _sign_in(served, SECOND_ADMIN)]
    forms = []
    for cookie, _token in admins:
        _status, _headers, body = _request(
            served,
            "GET",
            "/settings/usage/billing-email/edit",
            cookie,
            headers={"HX-Request": "true"},
        )
        forms.append(hidden_fields(body))
    wanted = [unique_email("first"), unique_email("second")]
    # Whichever save reaches Stripe first is answered last: without serialising the saves,
    # the first to reach Stripe would lose in Petra and win at Stripe.
    path = f"^/v1/customers/{organisation.stripe_customer_id}$"
    stripe_server.fault(method="POST", path=path, delay=1.5, times=1)
    stripe_server.fault(method="POST", path=path, delay=0.1, times=1)

    answers: list[tuple[int, str] | None] = [None, None]

    def submit(index: int) -> None:
        cookie, token = admins[index]
        body = urlencode({"email": wanted[index], **forms[index]})
        status, _headers, text = _request(
            served,
            "POST",
            "/settings/usage/billing-email",
            cookie,
            body=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "HX-Request": "true",
                "X-CSRFToken": token,
            },
        )
        answers[index] = (status, html.unescape(text))

    threads = [threading.Thread(target=submit, args=(index,)) for index in (0, 1)]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    for thread in threads:
        thread.join(timeout=60)
    stripe_server.clear_faults()

    statuses = sorted(answer[0] for answer in answers)
    assert statuses == [200, 409], answers
    winner = next(i for i, answer in enumerate(answers) if answer[0] == 200)
    loser = 1 - winner
    assert f"Saved. Stripe now sends invoices to {wanted[winner]}." in answers[winner][1]
    assert f"changed meanwhile to {wanted[winner]}" in answers[loser][1]
    assert stored_email(app) == wanted[winner]
    assert stripe_email(stripe_client, organisation) == wanted[winner]
    assert [row[3] for row in audit_rows(app)] == [wanted[winner]]
    updates = email_updates(stripe_server, organisation)
    assert [u["params"]["email"] for u in updates] == [wanted[winner]]
