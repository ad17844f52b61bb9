"""Billing contacts: adding (the billing-email rules, at most 10, no duplicates, rate limited),
the confirmation link (single use, 7 days, GET changes nothing), resend, remove, one-click
unsubscribe, the audit history, and the section as a page and as an htmx fragment."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select, update

from billing_app.extensions import db
from billing_app.models import AuditEvent, utcnow
from billing_app.notifications.models import AlertSettings, BillingContact
from tests.mail_server import MAIL_FROM, PUBLIC_URL
from tests.notifications_helpers import (
    ALERTS,
    CONTACTS,
    SECTION,
    add_confirmed,
    confirmation_link,
    contact,
    drain,
    html_of,
    outbox,
    text_of,
)
from tests.pages import parse


@pytest.fixture
def admin(auth, organisation):
    return auth.as_role("admin")


def _csrf(response) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', response.get_data(as_text=True)).group(1)


def test_adding_a_contact_mails_a_confirmation_link_and_shows_it_waiting(admin, app, mail_server):
    response = admin.post(CONTACTS, {"email": "ap@northwind.example"})
    assert response.status_code == 303
    assert response.headers["Location"] == SECTION
    html = admin.client.get(SECTION).get_data(as_text=True)
    item = parse(html).one("li", **{"data-contact": "ap@northwind.example"})
    assert "Waiting for confirmation" in item.text
    # Nothing is sent inside the request: the outbox holds it until the worker drains it.
    assert mail_server.messages == []
    [row] = outbox(app)
    assert (row.kind, row.recipient, row.state) == (
        "confirmation",
        "ap@northwind.example",
        "queued",
    )
    drain(app)
    [message] = mail_server.wait_for(1)
    assert message["To"] == "ap@northwind.example"
    assert message["From"] == MAIL_FROM
    assert "Northwind Msp" in message["Subject"]
    assert message.get_body(("plain",)) and message.get_body(("html",))
    path, _token = confirmation_link(message)
    assert f"{PUBLIC_URL}{path}" in html_of(message)
    assert "localhost" not in text_of(message)  # never the request's host
    assert message["List-Unsubscribe"].startswith(
        f"<{PUBLIC_URL}/settings/usage/notifications/unsubscribe/"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # On the wire the header is the link itself, on one line, not an encoded word.
    [raw] = mail_server.raw
    header = f"\r\nList-Unsubscribe: <{PUBLIC_URL}/settings/usage/notifications/unsubscribe/"
    assert header.encode() in raw
    assert b"=?utf-8?" not in raw.split(b"\r\nList-Unsubscribe:", 1)[1].split(b"\r\n", 1)[0]
    assert "/unsubscribe/" in text_of(message) and "Unsubscribe" in html_of(message)
    assert outbox(app)[0].state == "sent"


def test_the_link_is_single_use_and_get_changes_nothing(admin, app, mail_server, client):
    admin.post(CONTACTS, {"email": "owner@northwind.example"})
    drain(app)
    path, _ = confirmation_link(mail_server.wait_for(1)[0])
    anonymous = app.test_client()  # the link works without signing in
    page = anonymous.get(path)
    assert page.status_code == 200
    assert "Confirm" in page.get_data(as_text=True)
    assert contact(app, "owner@northwind.example").confirmed_at is None  # a GET changes nothing
    done = anonymous.post(path, data={"csrf_token": _csrf(page)})
    assert done.status_code == 200
    assert "now gets" in done.get_data(as_text=True)
    assert contact(app, "owner@northwind.example").confirmed_at is not None
    again = anonymous.post(path, data={"csrf_token": _csrf(page)})
    assert again.status_code == 409
    assert "Already confirmed" in again.get_data(as_text=True)
    listed = admin.client.get(SECTION).get_data(as_text=True)
    item = parse(listed).one("li", **{"data-contact": "owner@northwind.example"})
    assert "Confirmed" in item.text and "Resend" not in item.text


def test_another_contacts_link_an_expired_one_and_a_tampered_one_are_refused(
    admin, app, mail_server
):
    admin.post(CONTACTS, {"email": "one@northwind.example"})
    admin.post(CONTACTS, {"email": "two@northwind.example"})
    drain(app)
    messages = mail_server.wait_for(2)
    first = next(m for m in messages if m["To"] == "one@northwind.example")
    second = next(m for m in messages if m["To"] == "two@northwind.example")
    path_one, token_one = confirmation_link(first)
    path_two, _ = confirmation_link(second)
    id_two = contact(app, "two@northwind.example").id
    visitor = app.test_client()
    csrf = _csrf(visitor.get(path_one))  # a session's CSRF token, from a page that has a form
    # Contact two's address with contact one's token.
    crossed = f"{SECTION}/confirm/{id_two}/{token_one}"
    page = visitor.get(crossed)
    assert page.status_code == 404
    assert "does not work" in page.get_data(as_text=True)
    assert visitor.post(crossed, data={"csrf_token": csrf}).status_code == 404
    # Tampered: one character changed.
    tampered = path_two[:-1] + ("A" if path_two[-1] != "A" else "B")
    assert visitor.get(tampered).status_code == 404
    assert contact(app, "two@northwind.example").confirmed_at is None
    # Expired: 7 days after it was sent.
    with app.app_context():
        db.session.execute(
            update(BillingContact)
            .where(BillingContact.id == id_two)
            .values(token_expires_at=utcnow() - dt.timedelta(seconds=1))
        )
        db.session.commit()
    expired = visitor.get(path_two)
    assert expired.status_code == 410
    assert "Resend link" in expired.get_data(as_text=True)  # says what to do
    assert visitor.post(path_two, data={"csrf_token": csrf}).status_code == 410
    assert contact(app, "one@northwind.example").confirmed_at is None
    assert contact(app, "two@northwind.example").confirmed_at is None


def test_the_link_lasts_seven_days(admin, app, mail_server):
    admin.post(CONTACTS, {"email": "seven@northwind.example"})
    found = contact(app, "seven@northwind.example")
    expires = (
        found.token_expires_at.replace(tzinfo=dt.UTC)
        if found.token_expires_at.tzinfo is None
        else found.token_expires_at
    )
    assert dt.timedelta(days=6, hours=23) < expires - utcnow() <= dt.timedelta(days=7)
    assert len(found.token_hash) == 64  # only its hash is stored


def test_resend_gives_a_new_link_and_the_old_one_stops_working(admin, app, mail_server):
    admin.post(CONTACTS, {"email": "late@northwind.example"})
    drain(app)
    old_path, _ = confirmation_link(mail_server.wait_for(1)[0])
    found = contact(app, "late@northwind.example")
    assert admin.post(f"{CONTACTS}/{found.id}/resend").status_code == 303
    drain(app)
    new_path, _ = confirmation_link(mail_server.wait_for(2)[1])
    assert new_path != old_path
    visitor = app.test_client()
    assert visitor.get(old_path).status_code == 404
    assert visitor.get(new_path).status_code == 200


@pytest.mark.parametrize(
    ("typed", "status", "reason"),
    [
        ("", 400, "Enter"),
        ("not an address", 400, "cannot contain spaces"),
        ("Ada <ada@northwind.example>", 400, "without a name or angle brackets"),
        ("ada@northwind.example\r\nBcc: all@elsewhere.example", 400, "single line"),
        ("ada@northwind.example\nBcc: all@elsewhere.example", 400, "single line"),
        ("billing@northwind.example", 409, "is the billing email"),
    ],
)
def test_a_refused_address_shows_the_form_again_with_what_was_typed(
    admin, app, typed, status, reason
):
    response = admin.post(CONTACTS, {"email": typed})
    assert response.status_code == status
    html = response.get_data(as_text=True)
    assert reason in html
    field = parse(html).one("input", name="email")
    assert field.attrs["value"] == typed
    assert "<html" in html  # the page without htmx
    assert outbox(app) == []
    with app.app_context():
        assert db.session.scalars(select(BillingContact)).all() == []


def test_header_injection_never_reaches_a_message(admin, app):
    response = admin.post(
        CONTACTS, {"email": "x@northwind.example\r\nBcc: y@evil.example"}, htmx=True
    )
    assert response.status_code == 400
    assert "<html" not in response.get_data(as_text=True)
    assert outbox(app) == []


def test_an_organisation_name_with_a_line_break_stays_in_the_subject(admin, app, mail_server):
    from billing_app.notifications import mail

    with pytest.raises(mail.HeaderInjection):
        mail.one_line("Invoice\r\nBcc: y@evil.example", "subject")
    assert "\n" not in mail.subject_for("Evil\r\nBcc: y@evil.example", "Alert")
    from tests.factories import update_organisation

    update_organisation(app, name="Evil\r\nBcc: y@evil.example")
    admin.post(CONTACTS, {"email": "z@northwind.example"})
    drain(app)
    [message] = mail_server.wait_for(1)
    assert message["Bcc"] is None
    assert "Evil Bcc: y@evil.example" in message["Subject"]


def test_duplicates_are_refused_and_ten_is_the_most_waiting_ones_included(admin, app):
    for number in range(10):
        assert admin.post(CONTACTS, {"email": f"c{number}@northwind.example"}).status_code == 303
    duplicate = admin.post(CONTACTS, {"email": "C3@northwind.example"})
    assert duplicate.status_code in (409, 429)
    eleventh = admin.post(CONTACTS, {"email": "c10@northwind.example"})
    assert eleventh.status_code in (409, 429)
    with app.app_context():
        assert len(db.session.scalars(select(BillingContact)).all()) == 10


def test_the_eleventh_is_refused_and_a_removed_one_does_not_count(admin, app):
    from billing_app.models import Member, Organisation
    from billing_app.notifications import contacts

    with app.app_context():
        organisation = db.session.scalar(select(Organisation))
        member = db.session.scalar(select(Member).where(Member.role == "admin"))
        for number in range(10):
            assert contacts.add(organisation, member, f"c{number}@northwind.example").ok
    response = admin.post(CONTACTS, {"email": "c10@northwind.example"})
    assert response.status_code == 409
    assert "at most 10" in response.get_data(as_text=True)
    assert admin.post(CONTACTS, {"email": "c3@northwind.example"}).status_code == 409  # duplicate
    removed = contact(app, "c3@northwind.example")
    assert admin.post(f"{CONTACTS}/{removed.id}/remove").status_code == 303
    assert admin.post(CONTACTS, {"email": "c10@northwind.example"}).status_code == 303
    # A removed address may be added again.
    assert (
        admin.post(f"{CONTACTS}/{contact(app, 'c10@northwind.example').id}/remove").status_code
        == 303
    )
    assert admin.post(CONTACTS, {"email": "c3@northwind.example"}).status_code == 303


def test_adding_is_rate_limited(admin, app):
    statuses = [
        admin.post(CONTACTS, {"email": f"r{n}@northwind.example"}).status_code for n in range(11)
    ]
    assert statuses[:10] == [303] * 10 or 409 in statuses
    response = admin.post(CONTACTS, {"email": "over@northwind.example"})
    assert response.status_code == 429
    html = response.get_data(as_text=True)
    assert "Wait a minute" in html
    assert parse(html).one("input", name="email").attrs["value"] == "over@northwind.example"
    assert contact(app, "over@northwind.example") is None


def test_changes_are_in_the_audit_history(admin, app, mail_server):
    add_confirmed(admin, app, mail_server, "audit@northwind.example")
    found = contact(app, "audit@northwind.example")
    admin.post(f"{CONTACTS}/{found.id}/remove")
    with app.app_context():
        actions = [
            (e.action, e.member_id is not None)
            for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))
        ]
    assert actions == [
        ("billing_contact_added", True),
        ("billing_contact_confirmed", False),
        ("billing_contact_removed", True),
    ]


def test_one_click_unsubscribe_needs_no_cookie_or_csrf_and_removes_the_contact(
    admin, app, mail_server
):
    add_confirmed(admin, app, mail_server, "leaving@northwind.example")
    message = mail_server.messages[0]
    url = message["List-Unsubscribe"].strip("<>").removeprefix(PUBLIC_URL)
    stranger = app.test_client()  # no cookie
    shown = stranger.get(url)
    assert shown.status_code == 200
    assert "leaving@northwind.example" in shown.get_data(as_text=True)
    assert contact(app, "leaving@northwind.example").removed_at is None  # GET changes nothing
    response = stranger.post(url, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert contact(app, "leaving@northwind.example").removed_at is not None
    with app.app_context():
        assert db.session.scalar(
            select(AuditEvent.action).where(AuditEvent.action == "billing_contact_unsubscribed")
        )
    # Other POSTs under the section still need their CSRF token.
    assert stranger.post(CONTACTS, data={"email": "x@northwind.example"}).status_code in (302, 400)


def test_a_tampered_unsubscribe_link_changes_nothing(app, organisation, mail_server):
    response = app.test_client().post(
        "/settings/usage/notifications/unsubscribe/eyJvIjoxfQ.bad",
        data={"List-Unsubscribe": "One-Click"},
    )
    assert response.status_code == 404
    with app.app_context():
        assert db.session.scalars(select(AlertSettings)).all() == []


def test_the_billing_email_unsubscribes_from_alerts(app, organisation, mail_server):
    from billing_app.notifications.messages import unsubscribe_token

    with app.app_context():
        token = unsubscribe_token(organisation.id, None)
    response = app.test_client().post(
        f"{SECTION}/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}
    )
    assert response.status_code == 200
    assert "no more alerts" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(AlertSettings, organisation.id).billing_email_unsubscribed


def test_the_section_is_a_page_without_htmx_and_a_fragment_with_it(admin):
    page = admin.client.get(SECTION)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<html" in html
    assert parse(html).one("input", name="email").attrs["type"] == "email"
    fragment = admin.client.get(SECTION, headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert "<html" not in fragment.get_data(as_text=True)
    assert 'id="notifications"' in fragment.get_data(as_text=True)
    assert "HX-Request" in fragment.headers["Vary"]


def test_an_htmx_add_answers_the_section(admin, app):
    response = admin.post(CONTACTS, {"email": "hx@northwind.example"}, htmx=True)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<html" not in html and "hx@northwind.example" in html


@pytest.mark.parametrize("role", ["admin", "billing"])
def test_the_usage_page_includes_the_section_for_admins_and_billing(auth, organisation, role):
    auth.as_role(role)
    html = auth.client.get("/settings/usage").get_data(as_text=True)
    assert 'id="notifications"' in html


@pytest.mark.parametrize("role", ["full_member"])
def test_full_members_see_nothing_of_it(auth, organisation, role):
    auth.as_role(role)
    html = auth.client.get("/settings/usage").get_data(as_text=True)
    assert 'id="notifications"' not in html
    assert auth.client.get(SECTION).status_code == 403
    assert auth.post(CONTACTS, {"email": "x@northwind.example"}).status_code == 403


def test_alert_settings_are_saved_and_a_refusal_keeps_what_was_typed(admin, app):
    response = admin.post(
        ALERTS, {"budget": "2,500.50", "growth_percent": "20", "growth_min_users": "5"}
    )
    assert response.status_code == 303
    with app.app_context():
        saved = db.session.scalar(select(AlertSettings))
        assert (str(saved.budget), saved.growth_percent, saved.growth_min_users) == (
            "2500.50",
            20,
            5,
        )
    bad = admin.post(ALERTS, {"budget": "12.345", "growth_percent": "-3", "growth_min_users": "x"})
    assert bad.status_code == 400
    page = parse(bad.get_data(as_text=True))
    assert page.one("input", name="budget").attrs["value"] == "12.345"
    assert "two decimals" in bad.get_data(as_text=True)
    assert "whole number" in bad.get_data(as_text=True)
    cleared = admin.post(ALERTS, {"budget": "", "growth_percent": "", "growth_min_users": ""})
    assert cleared.status_code == 303
    with app.app_context():
        saved = db.session.scalar(select(AlertSettings))
        assert (saved.budget, saved.growth_percent, saved.growth_min_users) == (None, None, None)


def test_without_public_url_nothing_is_added_and_the_error_is_logged(admin, app, caplog):
    app.config["PUBLIC_URL"] = None
    with caplog.at_level("ERROR", logger="billing_app.notifications"):
        response = admin.post(CONTACTS, {"email": "nourl@northwind.example"})
    assert response.status_code == 503
    assert "PUBLIC_URL" in response.get_data(as_text=True)
    assert "PUBLIC_URL is not set" in caplog.text
    assert contact(app, "nourl@northwind.example") is None
    assert outbox(app) == []


def test_mail_settings_defaults_and_production(monkeypatch, tmp_path):
    from billing_app.config import ConfigError, from_environment

    for name in ("SMTP_URL", "MAIL_FROM", "PUBLIC_URL", "PETRA_ENV"):
        monkeypatch.delenv(name, raising=False)
    settings = from_environment(tmp_path)
    assert settings["SMTP_URL"] == "smtp://127.0.0.1:8025"
    assert settings["MAIL_FROM"] == "Petra Billing <billing@petra.localhost>"
    assert settings["PUBLIC_URL"] == "http://127.0.0.1:5000"
    monkeypatch.setenv("SMTP_URL", "http://mail.example")
    with pytest.raises(ConfigError, match="SMTP_URL"):
        from_environment(tmp_path)
    monkeypatch.setenv("SMTP_URL", "smtp+starttls://user:p%40ss@relay.example:587")
    monkeypatch.setenv("PUBLIC_URL", "https://billing.petra.example/")
    settings = from_environment(tmp_path)
    assert settings["PUBLIC_URL"] == "https://billing.petra.example"
    from billing_app.notifications.smtp import Relay

    relay = Relay.parse(settings["SMTP_URL"])
    assert (relay.scheme, relay.host, relay.port, relay.username, relay.password) == (
        "smtp+starttls",
        "relay.example",
        587,
        "user",
        "p@ss",
    )
    assert "p@ss" not in str(relay)
    # Production has no development defaults: it refuses to start without PUBLIC_URL, and
    # SMTP_URL is needed once there is mail to send.
    monkeypatch.setenv("PETRA_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "s" * 32)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_x")
    monkeypatch.setenv("RATELIMIT_STORAGE_URI", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("SERVER_NAME", "billing.petra.example")
    monkeypatch.delenv("SMTP_URL")
    monkeypatch.delenv("PUBLIC_URL")
    with pytest.raises(ConfigError, match="without PUBLIC_URL"):
        from_environment(tmp_path)
    monkeypatch.setenv("PUBLIC_URL", "https://billing.petra.example")
    settings = from_environment(tmp_path)
    assert settings["SMTP_URL"] is None
    assert settings["PUBLIC_URL"] == "https://billing.petra.example"
