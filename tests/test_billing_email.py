"""The billing email: validation, the inline edit routes, and saving it to Stripe, then the DB."""

from __future__ import annotations

import datetime as dt
import html
import re
import time

import pytest
from sqlalchemy import select

from billing_app.billing_email import history as billing_email
from billing_app.billing_email.addresses import InvalidEmail, normalise
from billing_app.billing_email.saving import idempotency_key
from billing_app.extensions import db
from billing_app.models import AuditEvent, Member, Organisation
from tests.billing_email_form import (
    EDIT,
    HTMX,
    OLD,
    SAVE,
    audit_rows,
    email_updates,
    hidden_fields,
    open_form,
    save,
    stored_email,
    stripe_email,
)
from tests.factories import make_organisation, unique_email
from tests.pages import email_history, parse

pytestmark = pytest.mark.stripe_customer

PAGE = "/settings/usage"
SHOW = "/settings/usage/billing-email"


def typed_value(page: str) -> str:
    """The value the email input shows, as a browser reads it."""
    match = re.search(
        r'<input type="email" id="billing-email-input" name="email" value="([^"]*)"', page
    )
    return html.unescape(match.group(1))


def member_id(app, role: str = "admin") -> int:
    with app.app_context():
        return db.session.scalar(
            select(Member.id).where(Member.email == f"{role}@northwind-msp.example")
        )


def assert_nothing_changed(app, stripe_client, stripe_server, organisation, updates=0):
    assert stored_email(app) == OLD
    assert audit_rows(app) == []
    assert stripe_email(stripe_client, organisation) == OLD
    assert len(email_updates(stripe_server, organisation)) == updates


# Validation, directly.


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("billing@northwind.example", "billing@northwind.example"),
        ("  Billing@NorthWind.EXAMPLE \t", "Billing@northwind.example"),
        ("ap+invoices@sub.northwind.example", "ap+invoices@sub.northwind.example"),
        ("rechnung@bücher.example", "rechnung@bücher.example"),
        ("rechnung@xn--bcher-kva.example", "rechnung@bücher.example"),
    ],
)
def test_valid_addresses_are_normalised(typed, expected):
    assert normalise(typed) == expected


LONG_LOCAL = "a" * 64
TOO_LONG = f"{LONG_LOCAL}@" + ".".join(["b" * 60] * 3) + ".example"  # 255 characters

BAD_ADDRESSES = [
    ("", "Enter the billing email address."),
    ("   ", "Enter the billing email address."),
    ("billing.northwind.example", "needs an @ between the name and the domain"),
    ("billing@", "Enter the domain after the @ too"),
    ("@northwind.example", "Enter the part before the @ too"),
    ("billing@northwind", "The domain after the @ needs a dot"),
    ("bill..ing@northwind.example", "cannot have two dots in a row"),
    ("bill ing@northwind.example", "An email address cannot contain spaces"),
    ("Ada Lovelace <ada@northwind.example>", "without a name or angle brackets"),
    ("<ada@northwind.example>", "without a name or angle brackets"),
    ('"ada lovelace"@northwind.example', "quotation marks"),
    ("ada@northwind.example\nBcc: eve@evil.example", "single line"),
    ("ada@northwind.example\r\n", "single line"),
    ("ada@northwind.example\u2028", "single line"),
    ("ada@[192.0.2.1]", "is not one that can receive email"),
    (TOO_LONG, "at most 254"),
]


@pytest.mark.parametrize(("typed", "message"), BAD_ADDRESSES)
def test_bad_addresses_are_refused_with_a_reason(typed, message):
    with pytest.raises(InvalidEmail, match=re.escape(message)):
        normalise(typed)


VALIDATOR_WORDS = ["@-sign", "SPACE", "period", "IDNA", "literal", "not valid"]


@pytest.mark.parametrize(
    "typed",
    [typed for typed, _ in BAD_ADDRESSES]
    + ["ada,b@northwind.example", "a@b@northwind.example", "ada@north_wind.example"],
)
def test_bad_addresses_are_explained_in_our_words_not_the_validators(typed):
    with pytest.raises(InvalidEmail) as refused:
        normalise(typed)
    message = str(refused.value)
    assert not [word for word in VALIDATOR_WORDS if word in message], message
    assert message.endswith(".")


def test_too_long_fixture_is_255_characters():
    assert len(TOO_LONG) == 255


def test_254_characters_is_still_accepted():
    address = f"{LONG_LOCAL}@" + ".".join(["b" * 60, "b" * 60, "b" * 59]) + ".example"
    assert len(address) == 254
    assert normalise(address) == address


def test_idempotency_key_is_stable_for_one_submission_only():
    key = idempotency_key("cus_1", OLD, "ap@northwind.example", "nonce-a")
    assert key == idempotency_key("cus_1", OLD, "ap@northwind.example", "nonce-a")
    assert key != idempotency_key("cus_1", OLD, "ap@northwind.example", "nonce-b")
    assert key != idempotency_key("cus_1", OLD, "ar@northwind.example", "nonce-a")
    assert key != idempotency_key("cus_2", OLD, "ap@northwind.example", "nonce-a")
    assert key != idempotency_key(
        "cus_1", "ar@northwind.example", "ap@northwind.example", "nonce-a"
    )
    assert len(key) <= 255 and "ap@northwind" not in key


# Display.


@pytest.mark.parametrize("role", ["full_member", "billing"])
def test_members_see_the_address_without_edit_or_history(auth, organisation, role):
    auth.as_role(role)
    for page in (auth.client.get(PAGE), auth.client.get(SHOW, headers=HTMX)):
        text = page.get_data(as_text=True)
        assert OLD in text
        assert "works only with exactly this address" in text
        assert EDIT not in text
        assert 'id="billing-email-history"' not in text


def test_admin_sees_edit_and_history(auth, organisation):
    auth.as_role("admin")
    text = auth.client.get(PAGE).get_data(as_text=True)
    assert f'action="{EDIT}"' in text and f'hx-get="{EDIT}"' in text
    assert 'id="billing-email-history"' in text and ">Change history<" in text
    assert "No changes yet." in text


def test_display_fragment_is_a_fragment(auth, organisation):
    auth.as_role("full_member")
    response = auth.client.get(SHOW, headers=HTMX)
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert text.lstrip().startswith('<div id="billing-email"')
    assert "<html" not in text
    assert "HX-Request" in response.headers.get("Vary", "")


# The edit form.


def test_edit_for_htmx_is_the_form_fragment_holding_the_current_value(auth, organisation):
    auth.as_role("admin")
    response = auth.client.get(EDIT, headers=HTMX)
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in text
    assert text.lstrip().startswith('<div id="billing-email"')
    assert re.search(
        r'<input type="email" id="billing-email-input" name="email" value="'
        + re.escape(OLD)
        + r'"[^>]*autofocus',
        text,
    )
    assert hidden_fields(text)["opened_with"] == OLD
    assert len(hidden_fields(text)["nonce"]) >= 20
    assert f'action="{PAGE}"' in text  # Cancel without JavaScript goes back to the page
    assert "HX-Request" in response.headers["Vary"]


def test_edit_without_htmx_is_the_whole_page_with_the_form_in_place(auth, organisation):
    auth.as_role("admin")
    response = auth.client.get(EDIT)
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" in text and "Settings · Usage" in text
    assert f'method="post" action="{SAVE}"' in text
    assert hidden_fields(text)["opened_with"] == OLD
    assert "HX-Request" in response.headers["Vary"]


def test_each_opening_of_the_form_has_its_own_nonce(auth, organisation):
    auth.as_role("admin")
    assert open_form(auth)["nonce"] != open_form(auth)["nonce"]


@pytest.mark.parametrize("role", ["full_member", "billing", "external_guest"])
def test_others_cannot_edit_or_save(app, auth, organisation, stripe_client, stripe_server, role):
    auth.as_role(role)
    assert auth.client.get(EDIT).status_code == 403
    assert auth.client.get(EDIT, headers=HTMX).status_code == 403
    form = {"opened_with": OLD, "nonce": "n" * 24}
    assert save(auth, unique_email(), form).status_code == 403
    assert save(auth, unique_email(), form, htmx=False).status_code == 403
    assert_nothing_changed(app, stripe_client, stripe_server, organisation)


# Saving.


def test_save_updates_stripe_then_the_organisation_with_an_audit_event(
    app, auth, organisation, stripe_client, stripe_server, billing_log
):
    auth.as_role("admin")
    form = open_form(auth)
    new = unique_email()
    response = save(auth, f"  {new} ", form)
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in text and 'name="email"' not in text
    assert f"Saved. Stripe now sends invoices to {new}." in text
    assert f"<strong>{new}</strong>" in text
    assert "HX-Request" in response.headers["Vary"]
    assert stored_email(app) == new
    assert stripe_email(stripe_client, organisation) == new
    assert audit_rows(app) == [("app", member_id(app), OLD, new)]
    (update,) = email_updates(stripe_server, organisation)
    assert update["params"] == {"email": new}
    assert update["idempotency_key"] == idempotency_key(
        organisation.stripe_customer_id, OLD, new, form["nonce"]
    )
    with app.app_context():
        assert db.session.get(Organisation, organisation.id).billing_email_stripe_ts is not None
    # The history on the page shows the change with who made it.
    assert "Admin" in text and OLD in text
    (record,) = billing_log.records
    assert "organisation=northwind-msp" in record.getMessage()
    assert f"member={member_id(app)}" in record.getMessage()
    assert "source=app" in record.getMessage()
    assert new not in record.getMessage()


def test_save_without_javascript_redirects_to_the_page_with_a_confirmation(
    app, auth, organisation, stripe_client
):
    auth.as_role("admin")
    form = hidden_fields(auth.client.get(EDIT).get_data(as_text=True))
    new = unique_email()
    response = save(auth, new, form, htmx=False)
    assert response.status_code == 303
    assert response.headers["Location"] == PAGE
    page = auth.client.get(PAGE).get_data(as_text=True)
    assert f"Saved. Stripe now sends invoices to {new}." in page
    assert f"<strong>{new}</strong>" in page
    assert stored_email(app) == new
    assert stripe_email(stripe_client, organisation) == new


@pytest.mark.parametrize(("typed", "message"), BAD_ADDRESSES)
def test_bad_address_is_refused_beside_the_field_and_kept(
    app, auth, organisation, stripe_client, stripe_server, typed, message
):
    auth.as_role("admin")
    form = open_form(auth)
    response = save(auth, typed, form)
    text = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "<html" not in text
    assert re.search(
        r'id="billing-email-message" class="error" role="alert">[^<]*'
        + re.escape(html.escape(message)),
        text,
    )
    assert typed_value(text) == typed
    assert 'aria-invalid="true"' in text
    assert hidden_fields(text) == form
    assert_nothing_changed(app, stripe_client, stripe_server, organisation)


def test_bad_address_without_javascript_renders_the_page_with_the_form(
    app, auth, organisation, stripe_client, stripe_server
):
    auth.as_role("admin")
    form = open_form(auth)
    response = save(auth, "Ada <ada@northwind.example>", form, htmx=False)
    text = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "<html" in text and "Settings · Usage" in text
    assert "without a name or angle brackets" in text
    assert typed_value(text) == "Ada <ada@northwind.example>"
    assert_nothing_changed(app, stripe_client, stripe_server, organisation)


def test_saving_the_same_address_does_nothing_and_does_not_call_stripe(
    app, auth, organisation, stripe_client, stripe_server
):
    auth.as_role("admin")
    form = open_form(auth)
    stripe_server.clear_requests()
    response = save(auth, f" {OLD} ", form)
    assert response.status_code == 200
    assert f"Nothing to change: the billing email is {OLD}." in response.get_data(as_text=True)
    assert stripe_server.requests("/v1/customers") == []
    assert_nothing_changed(app, stripe_client, stripe_server, organisation)


@pytest.mark.parametrize("htmx", [True, False])
def test_missing_csrf_token_is_refused(app, auth, organisation, stripe_client, stripe_server, htmx):
    auth.as_role("admin")
    form = open_form(auth)
    data = {"email": unique_email(), **form}
    headers = HTMX if htmx else {}
    response = auth.client.post(SAVE, data=data, headers=headers)
    assert response.status_code == 400
    assert "Reload the page" in response.get_data(as_text=True)
    assert_nothing_changed(app, stripe_client, stripe_server, organisation)


def test_wrong_csrf_token_is_refused(app, auth, organisation, stripe_client, stripe_server):
    auth.as_role("admin")
    form = open_form(auth)
    response = auth.client.post(
        SAVE, data={"email": unique_email(), **form, "csrf_token": "forged"}
    )
    assert response.status_code == 400
    assert_nothing_changed(app, stripe_client, stripe_server, organisation)


@pytest.mark.parametrize("missing", ["opened_with", "nonce"])
def test_a_form_without_its_hidden_fields_is_refused(
    app, auth, organisation, stripe_client, stripe_server, missing
):
    auth.as_role("admin")
    form = open_form(auth)
    del form[missing]
    response = save(auth, unique_email(), form)
    assert response.status_code == 400
    assert "This form is out of date" in response.get_data(as_text=True)
    assert_nothing_changed(app, stripe_client, stripe_server, organisation)


# Stripe failures.

STRIPE_FAULTS = [
    pytest.param({"status": 500}, 502, "Stripe had a problem on its side", id="500"),
    pytest.param({"status": 503}, 502, "Stripe had a problem on its side", id="503"),
    pytest.param({"status": 429}, 503, "Stripe is busy", id="429"),
    pytest.param({"status": 500, "delay": 3}, 504, "Stripe did not answer in time.", id="timeout"),
    pytest.param({"status": 400}, 502, "Stripe did not accept the change", id="400"),
]


@pytest.mark.parametrize(("fault", "status", "message"), STRIPE_FAULTS)
def test_stripe_failure_changes_nothing_and_the_same_form_can_be_retried(
    app, auth, organisation, stripe_client, stripe_server, fault, status, message
):
    auth.as_role("admin")
    form = open_form(auth)
    new = unique_email()
    path = f"^/v1/customers/{organisation.stripe_customer_id}$"
    stripe_server.fault(method="POST", path=path, times=1, **fault)
    response = save(auth, new, form)
    text = response.get_data(as_text=True)
    assert response.status_code == status
    assert message in text
    # After a timeout the change may still land at Stripe: never "not changed".
    assert ("the billing email was not changed" in text) is (fault.get("delay") is None)
    assert typed_value(text) == new
    assert hidden_fields(text) == form
    assert stored_email(app) == OLD
    assert audit_rows(app) == []
    assert stripe_email(stripe_client, organisation) == OLD

    retry = save(auth, new, hidden_fields(text))
    assert retry.status_code == 200
    assert stored_email(app) == new
    assert stripe_email(stripe_client, organisation) == new
    assert audit_rows(app) == [("app", member_id(app), OLD, new)]
    first, second = email_updates(stripe_server, organisation)
    assert first["idempotency_key"] == second["idempotency_key"]
    assert first["idempotency_key"] == idempotency_key(
        organisation.stripe_customer_id, OLD, new, form["nonce"]
    )


def test_timeout_after_stripe_applied_it_is_finished_by_the_retry_without_a_second_change(
    app, auth, organisation, stripe_client, stripe_server
):
    auth.as_role("admin")
    form = open_form(auth)
    new = unique_email()
    path = f"^/v1/customers/{organisation.stripe_customer_id}$"
    stripe_server.fault(method="POST", path=path, delay=2.5, times=1)
    response = save(auth, new, form)
    assert response.status_code == 504
    assert stored_email(app) == OLD
    assert audit_rows(app) == []
    deadline = time.monotonic() + 5
    while stripe_email(stripe_client, organisation) != new:  # Stripe finishes late
        assert time.monotonic() < deadline
        time.sleep(0.1)

    retry = save(auth, new, hidden_fields(response.get_data(as_text=True)))
    assert retry.status_code == 200
    assert stored_email(app) == new
    assert audit_rows(app) == [("app", member_id(app), OLD, new)]
    first, second = email_updates(stripe_server, organisation)
    assert first["idempotency_key"] == second["idempotency_key"]
    assert second["idempotent_replayed"] is True


def test_retry_while_stripe_still_answers_says_it_may_land_and_shows_it_when_it_does(
    app, auth, organisation, stripe_client, stripe_server
):
    auth.as_role("admin")
    form = open_form(auth)
    new = unique_email()
    path = f"^/v1/customers/{organisation.stripe_customer_id}$"
    stripe_server.fault(method="POST", path=path, delay=6, times=1)
    first = save(auth, new, form)
    assert first.status_code == 504
    # Saved again at once: the first request with the same key is still running at Stripe.
    retry = save(auth, new, hidden_fields(first.get_data(as_text=True)))
    text = retry.get_data(as_text=True)
    assert retry.status_code == 409
    assert "Stripe did not answer in time and is still working on this change" in text
    assert "It may still go through" in text and "will not be made twice" in text
    assert "not changed" not in text and "Stripe is busy" not in text
    pending = parse(text).by_id("billing-email-pending")
    assert pending.attrs["hx-trigger"].startswith("every")
    assert typed_value(text) == new
    # While Stripe has not made it, the poll changes nothing.
    poll = auth.client.get(
        "/settings/usage/billing-email",
        query_string={"awaiting": new},
        headers={"HX-Request": "true"},
    )
    assert poll.status_code == 204 and stored_email(app) == OLD
    deadline = time.monotonic() + 10
    while stripe_email(stripe_client, organisation) != new:  # Stripe finishes late
        assert time.monotonic() < deadline
        time.sleep(0.2)
    landed = auth.client.get(
        "/settings/usage/billing-email",
        query_string={"awaiting": new},
        headers={"HX-Request": "true"},
    )
    assert landed.status_code == 200
    assert f"Saved. Stripe now sends invoices to {new}." in landed.get_data(as_text=True)
    assert stored_email(app) == new
    assert [row[0] for row in audit_rows(app)] == ["stripe"]


def test_stripe_failure_without_javascript_renders_the_page_with_the_form(
    app, auth, organisation, stripe_client, stripe_server
):
    auth.as_role("admin")
    form = open_form(auth)
    new = unique_email()
    stripe_server.fault(method="POST", path="^/v1/customers/", status=429, times=1)
    response = save(auth, new, form, htmx=False)
    text = response.get_data(as_text=True)
    assert response.status_code == 503
    assert "<html" in text and "Stripe is busy" in text and typed_value(text) == new
    assert_nothing_changed(app, stripe_client, stripe_server, organisation, updates=1)


def test_failure_of_the_shared_address_lookup_changes_nothing(
    app, auth, organisation, stripe_client, stripe_server
):
    auth.as_role("admin")
    form = open_form(auth)
    stripe_server.fault(method="GET", path="^/v1/customers$", status=500, times=1)
    response = save(auth, unique_email(), form)
    assert response.status_code == 502
    assert "Stripe had a problem on its side" in response.get_data(as_text=True)
    assert_nothing_changed(app, stripe_client, stripe_server, organisation)


def test_customer_missing_at_stripe_is_explained(app, auth, organisation):
    with app.app_context():
        db.session.get(Organisation, organisation.id).stripe_customer_id = "cus_gone"
        db.session.commit()
    auth.as_role("admin")
    response = save(auth, unique_email(), open_form(auth))
    assert response.status_code == 409
    assert "no longer exists at Stripe" in response.get_data(as_text=True)
    assert stored_email(app) == OLD
    assert audit_rows(app) == []


def test_organisation_without_a_stripe_customer_is_refused(app, auth, stripe_server):
    with app.app_context():
        make_organisation("tailspin", billing_email="ap@tailspin.example")
    auth.as_role("admin", slug="tailspin")
    stripe_server.clear_requests()
    response = save(auth, unique_email(), open_form(auth))
    assert response.status_code == 409
    assert "not linked to a Stripe customer" in response.get_data(as_text=True)
    assert stored_email(app, "tailspin") == "ap@tailspin.example"
    assert audit_rows(app) == []
    assert stripe_server.requests("/v1/") == []


# No lost update.


def test_address_changed_meanwhile_is_shown_and_a_second_save_goes_through(
    app, auth, organisation, stripe_client, stripe_server
):
    auth.as_role("admin")
    form = open_form(auth)
    meanwhile = unique_email("meanwhile")
    with app.app_context():
        db.session.get(Organisation, organisation.id).billing_email = meanwhile
        db.session.commit()
    typed = unique_email("typed")

    response = save(auth, typed, form)
    text = response.get_data(as_text=True)
    assert response.status_code == 409
    assert f"The billing email was changed meanwhile to {meanwhile}." in text
    assert typed_value(text) == typed
    # The advice points where the typed address is: the field comes before the message.
    assert "below" not in text
    assert "use the address in the field above" in text
    assert text.index('id="billing-email-input"') < text.index('id="billing-email-message"')
    assert hidden_fields(text)["opened_with"] == meanwhile
    assert stored_email(app) == meanwhile
    assert email_updates(stripe_server, organisation) == []

    again = save(auth, typed, hidden_fields(text))
    assert again.status_code == 200
    assert stored_email(app) == typed
    assert stripe_email(stripe_client, organisation) == typed
    assert audit_rows(app) == [("app", member_id(app), meanwhile, typed)]


def test_second_admin_saving_an_old_form_does_not_overwrite_the_first(app, client, organisation):
    from tests.factories import Auth

    with app.app_context():
        organisation = db.session.get(Organisation, organisation.id)
        second = Member(email="ops@northwind-msp.example", name="Ops", role="admin")
        second.password_hash = organisation.members[0].password_hash
        organisation.members.append(second)
        db.session.commit()
    first_admin = Auth(app.test_client()).as_role("admin")
    second_admin = Auth(app.test_client())
    assert second_admin.login("ops@northwind-msp.example").status_code == 303
    first_form, second_form = open_form(first_admin), open_form(second_admin)
    first_new, second_new = unique_email("first"), unique_email("second")

    assert save(first_admin, first_new, first_form).status_code == 200
    response = save(second_admin, second_new, second_form)
    assert response.status_code == 409
    assert f"changed meanwhile to {first_new}" in response.get_data(as_text=True)
    assert stored_email(app) == first_new


# Shared address.


def test_address_of_another_stripe_customer_needs_confirmation(
    app, auth, organisation, stripe_client, stripe_server
):
    shared = unique_email("shared")
    stripe_client.v1.customers.create(params={"email": shared, "name": "Someone else"})
    auth.as_role("admin")
    form = open_form(auth)

    response = save(auth, shared, form)
    text = response.get_data(as_text=True)
    assert response.status_code == 409
    assert f"Another Stripe customer already uses {shared}." in text
    assert "Someone else" not in text
    assert f'name="confirm_shared" value="{shared}"' in text
    assert_nothing_changed(app, stripe_client, stripe_server, organisation)

    # Confirming another address does not carry over.
    other = unique_email("other")
    assert save(auth, other, form, confirm_shared=shared).status_code == 200
    assert stored_email(app) == other


def test_confirmed_shared_address_is_saved(app, auth, organisation, stripe_client):
    shared = unique_email("shared")
    stripe_client.v1.customers.create(params={"email": shared})
    auth.as_role("admin")
    form = open_form(auth)
    assert save(auth, shared, form).status_code == 409
    response = save(auth, shared, form, confirm_shared=shared)
    assert response.status_code == 200
    assert stored_email(app) == shared
    assert stripe_email(stripe_client, organisation) == shared


# History.


def test_history_shows_the_last_ten_changes_newest_first(app, auth, organisation):
    start = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
    admin = member_id(app)
    with app.app_context():
        for n in range(12):
            db.session.add(
                AuditEvent(
                    organisation_id=organisation.id,
                    member_id=admin if n % 2 else None,
                    action=billing_email.AUDIT_ACTION,
                    source="app" if n % 2 else "stripe",
                    old_value=f"old{n}@northwind.example",
                    new_value=f"new{n}@northwind.example",
                    created_at=start + dt.timedelta(hours=n),
                )
            )
        db.session.add(
            AuditEvent(
                organisation_id=organisation.id,
                action="portal_direct_access_changed",
                source="staff",
                old_value="false",
                new_value="true",
            )
        )
        db.session.commit()
    auth.as_role("admin")
    page = auth.client.get(PAGE)
    text = page.get_data(as_text=True)
    rows = [tuple(row) for row in email_history(page)]
    assert len(rows) == 10
    assert rows[0] == (
        "1 Mar 2026, 20:00 UTC",
        "Admin",
        "old11@northwind.example",
        "new11@northwind.example",
    )
    assert rows[1] == (
        "1 Mar 2026, 19:00 UTC",
        "Stripe",
        "old10@northwind.example",
        "new10@northwind.example",
    )
    assert rows[-1][2] == "old2@northwind.example"
    assert "new1@northwind.example" not in text
    assert ">true<" not in text


def test_saving_is_rate_limited_per_member_and_keeps_what_was_typed(
    auth, organisation, app, stripe_client, stripe_server
):
    auth.as_role("admin")
    form = open_form(auth)
    for _ in range(10):
        assert save(auth, "not an address", form).status_code == 400
    stripe_server.clear_requests()
    wanted = unique_email()
    response = save(auth, wanted, form)
    page = response.get_data(as_text=True)
    assert response.status_code == 429
    assert "Wait a minute, then save again." in page
    assert typed_value(page) == wanted
    assert 'id="billing-email-input"' in page and "<html" not in page
    assert_nothing_changed(app, stripe_client, stripe_server, organisation)
