"""Delivery and what is delivered: the outbox drained as the worker does (SMTP down then back,
4xx retried, a 5xx for one recipient not stopping others), the real worker process (killed
mid-send: neither lost nor doubled), the monthly statement on `invoice.finalized`, and the
budget and growth alerts (once per month, threshold and tenant)."""

from __future__ import annotations

import datetime as dt
import json
import signal
import time
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from billing_app.extensions import db
from billing_app.figures.months import Month, today_utc
from billing_app.models import Member, Organisation
from billing_app.notifications import adapters, alerts, contacts, tasks
from billing_app.notifications import settings as alert_settings
from billing_app.notifications.models import OutboxMessage, SentAlert, Statement
from dev.demo import cli as demo_cli
from dev.stripe_local.invoices import create_invoices
from tests.factories import add_tenant
from tests.mail_server import PUBLIC_URL
from tests.notifications_helpers import (
    CONTACTS,
    SECTION,
    add_confirmed,
    drain,
    html_of,
    outbox,
    text_of,
)
from tests.pages import parse
from tests.stripe_events import deliver


@pytest.fixture
def admin(auth, organisation):
    return auth.as_role("admin")


def _wait_until_due(app) -> None:
    with app.app_context():
        due = db.session.scalar(
            select(OutboxMessage.next_attempt_at).where(OutboxMessage.state == "queued")
        )
    if due is not None:
        due = due if due.tzinfo else due.replace(tzinfo=dt.UTC)
        time.sleep(max(0.0, (due - dt.datetime.now(dt.UTC)).total_seconds()) + 0.1)


# --- The outbox ---------------------------------------------------------------------------------


def test_smtp_down_then_back_is_delivered_once(admin, app, mail_server):
    mail_server.stop()
    admin.post(CONTACTS, {"email": "down@northwind.example"})
    result = drain(app)
    assert (result.sent, result.retrying) == (0, 1)
    [row] = outbox(app)
    assert row.state == "queued" and row.attempts == 1
    assert "Connection" in row.last_error or "refused" in row.last_error.lower()
    assert result.next_wake is not None
    assert result.next_wake - dt.datetime.now(dt.UTC) <= dt.timedelta(seconds=3)  # within seconds
    mail_server.start()
    assert drain(app).sent == 0  # not due yet: backoff
    _wait_until_due(app)
    assert drain(app).sent == 1
    assert drain(app).sent == 0
    assert len(mail_server.wait_for(1)) == 1
    [row] = outbox(app)
    assert (row.state, row.attempts) == ("sent", 2)


def test_a_temporary_4xx_is_retried_with_backoff(admin, app, mail_server):
    mail_server.keeper.temporary = "451 4.3.0 Try again later"
    admin.post(CONTACTS, {"email": "busy@northwind.example"})
    assert drain(app).retrying == 1
    _wait_until_due(app)
    assert drain(app).retrying == 1
    [row] = outbox(app)
    assert row.attempts == 2 and row.last_error.startswith("451")
    assert tasks.outbox.backoff(1) == 2 and tasks.outbox.backoff(2) == 4
    assert tasks.outbox.backoff(10) == 30
    mail_server.keeper.temporary = None
    _wait_until_due(app)
    assert drain(app).sent == 1
    assert len(mail_server.messages) == 1


def test_a_5xx_for_one_recipient_does_not_stop_the_others(admin, app, mail_server):
    mail_server.keeper.refused["gone@northwind.example"] = "550 5.1.1 No such mailbox"
    for email in ("first@northwind.example", "gone@northwind.example", "last@northwind.example"):
        admin.post(CONTACTS, {"email": email})
    result = drain(app)
    assert (result.sent, result.failed) == (2, 1)
    delivered = sorted(m["To"] for m in mail_server.messages)
    assert delivered == ["first@northwind.example", "last@northwind.example"]
    states = {row.recipient: (row.state, row.last_error) for row in outbox(app)}
    assert states["gone@northwind.example"] == ("failed", "550 5.1.1 No such mailbox")
    assert drain(app).sent == 0  # a failed one is never tried again
    # The page shows what was sent to whom and when, and what failed.
    table = parse(admin.client.get(SECTION).get_data(as_text=True)).one(
        "table", **{"class": "outbox"}
    )
    rows = {tr.one("td", **{"class": "outbox-recipient"}).text: tr for tr in table.all("tr")[1:]}
    assert "Failed: 550 5.1.1 No such mailbox" in rows["gone@northwind.example"].text
    assert (
        "Sent " in rows["first@northwind.example"].text
        and "UTC" in rows["first@northwind.example"].text
    )


def test_sending_never_happens_in_the_request(admin, app, mail_server):
    admin.post(CONTACTS, {"email": "later@northwind.example"})
    time.sleep(0.3)
    assert mail_server.messages == []
    pending = [task.name for task in adapters.queue(app).pending()]
    assert "notifications_drain" in pending  # the worker is asked to drain after the commit


def test_the_same_message_is_never_queued_twice(app, organisation):
    from billing_app.notifications.outbox import queue_message

    with app.app_context():
        for _ in range(2):
            queue_message(
                organisation_id=organisation.id,
                kind="x",
                recipient="a@b.example",
                subject="s",
                message=b"m",
                key="same-key",
            )
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()


def test_a_missing_smtp_url_is_a_clear_logged_error_and_the_mail_waits(admin, app, caplog):
    app.config.update(SMTP_URL=None, PUBLIC_URL=PUBLIC_URL)
    admin.post(CONTACTS, {"email": "waits@northwind.example"})
    with caplog.at_level("ERROR", logger="billing_app.notifications"):
        result = drain(app)
    assert result.retrying == 1
    assert "SMTP_URL is not set" in caplog.text
    assert outbox(app)[0].state == "queued"


# --- The real worker process --------------------------------------------------------------------


def test_the_worker_delivers_after_smtp_returns_and_a_killed_worker_neither_loses_nor_doubles(
    admin, app, mail_server, worker_factory, monkeypatch
):
    monkeypatch.setenv("SMTP_URL", mail_server.url)
    monkeypatch.setenv("PUBLIC_URL", PUBLIC_URL)
    monkeypatch.setenv("MAIL_LEASE_SECONDS", "3")
    monkeypatch.setenv("SMTP_TIMEOUT", "10")
    # SMTP is down when the contact is added; the worker retries within seconds.
    mail_server.stop()
    admin.post(CONTACTS, {"email": "first@northwind.example"})
    worker = worker_factory()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not outbox(app)[0].attempts:
        time.sleep(0.1)
    assert outbox(app)[0].attempts >= 1 and outbox(app)[0].state == "queued", worker.log
    mail_server.start()
    assert [m["To"] for m in mail_server.wait_for(1, timeout=40)] == ["first@northwind.example"], (
        worker.log
    )

    # Now the worker is killed while it is talking to the server, before the message is in.
    mail_server.keeper.released.clear()
    admin.post(CONTACTS, {"email": "second@northwind.example"})
    assert mail_server.keeper.held.wait(20), worker.log
    worker.process.send_signal(signal.SIGKILL)
    worker.process.wait()
    mail_server.keeper.released.set()
    time.sleep(0.5)
    assert len(mail_server.messages) == 1
    second = next(row for row in outbox(app) if row.recipient == "second@northwind.example")
    assert second.state == "queued" and second.claimed_until is not None  # not lost: claimed
    replacement = worker_factory()
    messages = mail_server.wait_for(2, timeout=40)
    assert [m["To"] for m in messages] == ["first@northwind.example", "second@northwind.example"], (
        replacement.log
    )
    time.sleep(2)
    assert len(mail_server.messages) == 2  # and not doubled
    assert {row.state for row in outbox(app)} == {"sent"}


# --- The monthly statement ----------------------------------------------------------------------


def _finalized(invoice_id: str, customer: str, event_id: str | None = None) -> dict:
    return {
        "id": event_id or f"evt_{invoice_id}_{time.time_ns()}",
        "object": "event",
        "api_version": "2017-08-15",
        "created": int(time.time()),
        "livemode": False,
        "type": "invoice.finalized",
        "data": {"object": {"id": invoice_id, "object": "invoice", "customer": customer}},
    }


@pytest.fixture
def november_invoice(app, organisation, stripe_server) -> dict:
    with app.app_context():
        org = db.session.get(Organisation, organisation.id)
        add_tenant(org, "Contoso Ltd", users=(("Grace Hopper", (("2025-12-01", None),)),))
        org.bump_usage_revision()
        db.session.commit()
    [invoice] = create_invoices(
        stripe_server.api_base,
        organisation.stripe_customer_id,
        [{"period": "2026-11", "amount": 123456, "currency": "usd", "status": "open"}],
    )
    return invoice


def _run_pending(app, name: str) -> None:
    queue = adapters.queue(app)
    for task in queue.pending():
        if task.name == name:
            queue.execute(task)


@pytest.mark.stripe_customer
def test_invoice_finalized_mails_the_statement_once_to_confirmed_contacts(
    admin, app, mail_server, organisation, november_invoice
):
    add_confirmed(admin, app, mail_server, "ap@northwind.example")
    admin.post(CONTACTS, {"email": "unconfirmed@northwind.example"})
    drain(app)
    before = len(mail_server.messages)
    event = _finalized(november_invoice["id"], organisation.stripe_customer_id)
    response = deliver(admin.client, app, event)
    assert response.status_code == 200
    assert response.get_json()["outcome"] == "queued"
    assert deliver(admin.client, app, event).get_json()["outcome"] == "duplicate"  # replayed
    other = _finalized(november_invoice["id"], organisation.stripe_customer_id)
    assert deliver(admin.client, app, other).get_json()["outcome"] == "duplicate"  # another event
    _run_pending(app, "notifications_statement")
    _run_pending(app, "notifications_statement")
    drain(app)
    statements = mail_server.messages[before:]
    assert [m["To"] for m in statements] == ["ap@northwind.example"]  # not the billing email
    [message] = statements
    assert (
        "Northwind Msp" in message["Subject"] and november_invoice["number"] in message["Subject"]
    )
    text = text_of(message)
    assert november_invoice["number"] in text
    assert "1 November 2026 to 30 November 2026" in text
    assert "1,234.56 USD" in text
    assert "(Net 30)" in text
    due = dt.datetime.fromtimestamp(november_invoice["due_date"], dt.UTC).date()
    assert f"{due.day} {due:%B %Y}" in text
    # The links are those Stripe gives when the mail is built (they change on every retrieve).
    assert "/p/invoices/inv_" in text and "/pdf" in text
    assert november_invoice["hosted_invoice_url"] not in text
    assert "/p/invoices/" in html_of(message)
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "usage-northwind-msp-2026-11-tenants.csv"
    exported = admin.client.get("/settings/usage/export/tenants.csv?month=2026-11")
    assert (
        attachment.get_content().encode() == exported.get_data()
        or attachment.get_payload(decode=True) == exported.get_data()
    )
    with app.app_context():
        assert db.session.scalars(select(Statement)).one().built_at is not None
        kinds = [r.kind for r in db.session.scalars(select(OutboxMessage))]
    assert kinds.count("statement") == 1
    unconfirmed = mail_server.keeper.to("unconfirmed@northwind.example")
    assert [m["Subject"].startswith("Confirm") for m in unconfirmed] == [True]


def test_an_event_for_another_customer_is_answered_and_sends_nothing(
    app, client, organisation, mail_server
):
    response = deliver(client, app, _finalized("in_unknown", "cus_nobody"))
    assert response.status_code == 200
    assert response.get_json()["outcome"] == "unknown_customer"
    with app.app_context():
        assert db.session.scalars(select(Statement)).all() == []
    assert "notifications_statement" not in [t.name for t in adapters.queue(app).pending()]


def test_an_unsigned_invoice_event_is_refused(app, client, organisation):
    body = json.dumps(_finalized("in_x", organisation.stripe_customer_id))
    response = client.post(
        "/webhooks/stripe", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalars(select(Statement)).all() == []


# --- Alerts -------------------------------------------------------------------------------------


def _month() -> Month:
    return Month.of(today_utc())


@pytest.fixture
def usage(app, organisation):
    """Ten users billed since last year in one tenant; three more this month in another that
    had ten last month; a new tenant with five this month."""
    first = _month().first_day.isoformat()
    always = (("2025-12-01", None),)
    with app.app_context():
        org = db.session.get(Organisation, organisation.id)
        add_tenant(org, "Steady Ltd", users=tuple((f"S {n}", always) for n in range(10)))
        grown = tuple((f"G {n}", always) for n in range(10)) + tuple(
            (f"New {n}", ((first, None),)) for n in range(3)
        )
        add_tenant(org, "Growing Ltd", users=grown)
        add_tenant(
            org,
            "Fresh Ltd",
            onboarded_on=first,
            users=tuple((f"F {n}", ((first, None),)) for n in range(5)),
        )
        org.bump_usage_revision()  # as an import does: the cached figures are not current
        db.session.commit()
    return organisation


def _set(app, organisation_id, **values) -> None:
    with app.app_context():
        member = db.session.scalar(select(Member).where(Member.role == "admin"))
        current = alert_settings.current(organisation_id)
        merged = {
            "budget": current.budget,
            "growth_percent": current.growth_percent,
            "growth_min_users": current.growth_min_users,
        } | values
        alert_settings.save(organisation_id, member, alert_settings.Alerts(**merged))


def _check(app, organisation_id) -> int:
    with app.app_context():
        return alerts.check(organisation_id, today_utc())


def _sent(app) -> list[tuple[str, int, str]]:
    with app.app_context():
        return sorted(
            (a.kind, a.threshold, a.tenant_key) for a in db.session.scalars(select(SentAlert))
        )


def test_budget_alerts_at_80_and_100_percent_once_and_lowering_the_budget_does_not_resend(
    admin, app, mail_server, usage
):
    with app.app_context():
        cost, _ = adapters.projected_cost(db.session.get(Organisation, usage.id), today_utc())
    assert cost == Decimal("84.00")  # 28 users at 3.00, to the month's end
    add_confirmed(admin, app, mail_server, "ops@northwind.example")
    admin.post(CONTACTS, {"email": "waiting@northwind.example"})
    _set(app, usage.id, budget=Decimal("100.00"))
    assert _check(app, usage.id) == 1  # 84 % of 100: the 80 % alert
    assert _check(app, usage.id) == 0
    _set(app, usage.id, budget=Decimal("90.00"))  # 93 %: 80 % again? no
    assert _check(app, usage.id) == 0
    _set(app, usage.id, budget=Decimal("84.00"))  # 100 %
    assert _check(app, usage.id) == 1
    _set(app, usage.id, budget=Decimal("50.00"))
    assert _check(app, usage.id) == 0
    assert _sent(app) == [("budget", 80, ""), ("budget", 100, "")]
    before = len(mail_server.messages)
    drain(app)
    alerts_mail = [m for m in mail_server.messages[before:] if "alert" in m["Subject"]]
    waiting = mail_server.keeper.to("waiting@northwind.example")
    assert [m["Subject"].startswith("Confirm") for m in waiting] == [True]
    subjects = sorted((m["To"], m["Subject"]) for m in alerts_mail)
    assert [to for to, _ in subjects] == [
        "billing@northwind.example",
        "billing@northwind.example",
        "ops@northwind.example",
        "ops@northwind.example",
    ]  # never the unconfirmed contact
    assert any("80 %" in s for _, s in subjects) and any("100 %" in s for _, s in subjects)
    assert all("Northwind Msp" in s for _, s in subjects)
    for message in alerts_mail:
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert f"{PUBLIC_URL}/settings/usage" in text_of(message)
    page = admin.client.get(SECTION).get_data(as_text=True)
    sent_list = parse(page).one("ul", **{"class": "alerts-sent"}).text
    assert "budget 80 %" in sent_list and "budget 100 %" in sent_list


def test_growth_alerts_once_per_tenant_and_threshold(admin, app, mail_server, usage):
    _set(app, usage.id, growth_percent=20, growth_min_users=3)
    assert _check(app, usage.id) == 2
    assert _check(app, usage.id) == 0
    tenants = {key for _, _, key in _sent(app)}
    with app.app_context():
        names = dict(
            db.session.execute(select(adapters_tenant_key(), adapters_tenant_name())).all()
        )
    assert sorted(names[key] for key in tenants) == ["Fresh Ltd", "Growing Ltd"]  # not Steady
    drain(app)
    subjects = sorted(m["Subject"] for m in mail_server.messages)
    assert any("Growing Ltd" in s for s in subjects) and any("Fresh Ltd" in s for s in subjects)
    _set(app, usage.id, growth_percent=20, growth_min_users=4)
    assert _check(app, usage.id) == 0  # the same threshold: Fresh Ltd is not alerted again


def adapters_tenant_key():
    from billing_app.models import Tenant

    return Tenant.external_id


def adapters_tenant_name():
    from billing_app.models import Tenant

    return Tenant.name


def test_an_unsubscribed_billing_email_gets_no_alerts(app, mail_server, usage):
    from billing_app.notifications.messages import unsubscribe_token

    with app.app_context():
        token = unsubscribe_token(usage.id, None)
    app.test_client().post(f"{SECTION}/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    _set(app, usage.id, budget=Decimal("10.00"))
    assert _check(app, usage.id) == 2
    drain(app)
    assert mail_server.messages == []


def test_the_alert_is_unique_in_the_database(app, usage):
    with app.app_context():
        for _ in range(2):
            db.session.add(
                SentAlert(
                    organisation_id=usage.id,
                    month="2026-12",
                    kind="budget",
                    threshold=80,
                    tenant_key="",
                )
            )
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()


def test_every_import_runs_the_alert_check_even_one_that_changes_nothing(app, mail_server):
    from billing_app.importer import import_file
    from tests.factories import northwind

    def requested() -> list[int]:
        with app.app_context():
            ids = db.session.scalars(select(Organisation.id)).all()
        store = adapters.queue(app)
        return [i for i in ids if store.get(f"notifications-alert-check:{i}", peek=True)]

    def sweep() -> int:
        before = len(_sent(app))
        tasks.tasks(app).sweep.call_local()
        return len(_sent(app)) - before

    with app.app_context():
        import_file(northwind())
        organisation_id = db.session.scalar(select(Organisation.id))
        member = db.session.scalar(select(Member).where(Member.role == "admin"))
        budget = alert_settings.Alerts(Decimal("0.01"), None, None)
        alert_settings.save(organisation_id, member, budget)
    assert requested() == [organisation_id]
    assert sweep() == 2
    assert requested() == []
    assert _sent(app) == [("budget", 80, ""), ("budget", 100, "")]
    for _ in range(2):
        with app.app_context():
            summary = import_file(northwind())  # changes nothing
        assert not summary.changed
        assert requested() == [organisation_id]  # asked for all the same
        assert sweep() == 0  # and sent nothing again
    assert _sent(app) == [("budget", 80, ""), ("budget", 100, "")]
    with app.app_context():
        recipients = [r.recipient for r in db.session.scalars(select(OutboxMessage))]
    assert recipients == ["billing@northwind.example", "billing@northwind.example"]


def test_the_worker_sweep_runs_the_requested_checks(app, usage, mail_server):
    _set(app, usage.id, budget=Decimal("50.00"))
    with app.app_context():
        tasks.after_import(usage.id)
        tasks.after_import(usage.id)  # twice: one check
    assert adapters.queue(app).pending_count() == 0  # a request, not a task
    tasks.tasks(app).sweep.call_local()  # what the worker runs every minute
    assert _sent(app) == [("budget", 80, ""), ("budget", 100, "")]
    _run_pending(app, "notifications_drain")
    assert sorted(m["Subject"].split(":")[0] for m in mail_server.messages) == [
        "Budget alert",
        "Budget alert",
    ]


def test_contacts_service_never_lists_unconfirmed_addresses(app, organisation):
    with app.app_context():
        org = db.session.get(Organisation, organisation.id)
        member = db.session.scalar(select(Member).where(Member.role == "admin"))
        assert contacts.add(org, member, "pending@northwind.example").ok
        assert contacts.confirmed_addresses(organisation.id) == []
        assert alerts.recipients(org) == [(None, "billing@northwind.example")]


@pytest.mark.stripe_customer
def test_the_local_stripe_server_finalizes_an_invoice_and_sends_the_signed_webhook(
    app, organisation, stripe_server, stripe_client, live_server, mail_server
):
    """What `flask demo finalize-invoice` does under `make run`: the whole path to the outbox."""
    import uuid

    stripe_server.register_webhook(
        f"{live_server.url}/webhooks/stripe",
        app.config["STRIPE_WEBHOOK_SECRET"],
        ["invoice.finalized"],
        name=f"notifications-{uuid.uuid4().hex[:8]}",
    )
    [draft] = create_invoices(
        stripe_server.api_base,
        organisation.stripe_customer_id,
        [{"period": "2026-10", "amount": 5000, "currency": "usd", "status": "draft"}],
    )
    assert draft["status"] == "draft" and draft["number"] is None
    invoice = stripe_client.v1.invoices.finalize_invoice(draft["id"])
    assert invoice.status == "open" and invoice.number
    deadline = time.monotonic() + 15
    found = None
    while time.monotonic() < deadline and found is None:
        with app.app_context():
            found = db.session.get(Statement, draft["id"])
        time.sleep(0.1)
    assert found is not None and found.organisation_id == organisation.id
    assert "notifications_statement" in [t.name for t in adapters.queue(app).pending()]


def test_flask_worker_is_the_reports_worker_by_a_shorter_name(app):
    result = app.test_cli_runner().invoke(args=["worker", "--help"])
    assert result.exit_code == 0
    assert "reports, mail, alerts" in result.output


@pytest.mark.stripe_customer
def test_flask_demo_finalize_invoice_finalizes_one_at_the_local_stripe_server(
    app, organisation, stripe_client
):
    with app.app_context():
        org = db.session.get(Organisation, organisation.id)
        add_tenant(org, "Contoso Ltd", users=(("Grace Hopper", (("2025-12-01", None),)),))
    demo_cli.init_app(app)
    result = app.test_cli_runner().invoke(
        args=["demo", "finalize-invoice", "northwind-msp", "--month", "2026-09"]
    )
    assert result.exit_code == 0, result.output
    assert "finalized" in result.output
    [invoice] = stripe_client.v1.invoices.list(
        params={"customer": organisation.stripe_customer_id}
    ).data
    assert invoice.status == "open" and invoice.amount_due == 300  # one user at 3.00


def test_checks_running_at_once_send_each_alert_once(app, usage):
    import threading

    _set(app, usage.id, budget=Decimal("50.00"), growth_percent=20, growth_min_users=3)
    start = threading.Barrier(4)
    counts: list[int] = []

    def worker() -> None:
        with app.app_context():
            start.wait()
            counts.append(alerts.check(usage.id, today_utc()))
            db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(counts) == 4  # 80 %, 100 % and two growing tenants, each by one check
    assert len(_sent(app)) == 4
    with app.app_context():
        keys = [r.dedupe_key for r in db.session.scalars(select(OutboxMessage))]
    assert len(keys) == 4  # one recipient (the billing email) per alert, no copies
