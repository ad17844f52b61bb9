"""Invoices on the Usage page: rows and statuses, the gateway's reads, the section, the open
route and who may use them, and the demo invoices of `make run`."""

from __future__ import annotations

import datetime as dt
import re
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest
import stripe
from sqlalchemy import select

from billing_app import stripe_gateway
from billing_app.extensions import db
from billing_app.figures.cache import month_summary
from billing_app.figures.months import Month, available_months
from billing_app.invoices import service
from billing_app.invoices.service import InvoiceState, invoice_row, invoice_state
from billing_app.models import Organisation
from billing_app.stripe_gateway import StripeGateway, StripeInvoice, StripeRequestFailed
from dev.demo import cli as demo_cli
from dev.stripe_local.invoices import create_invoices
from tests.factories import make_organisation

pytestmark = pytest.mark.stripe_customer

HX = {"HX-Request": "true"}
DEMO_FILE = Path(__file__).resolve().parent.parent / "dev" / "demo" / "northwind.json"


def utc(day: str) -> int:
    return int(dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp())


def stripe_invoice(**fields) -> StripeInvoice:
    values = {
        "id": "in_test1",
        "customer": "cus_test",
        "number": "ABCD1234-0001",
        "status": "open",
        "amount_due": 123456,
        "amount_paid": 0,
        "currency": "usd",
        "created": utc("2026-12-01"),
        "due_date": utc("2026-12-31"),
        "period_start": utc("2026-11-01"),
        "period_end": utc("2026-12-01"),
        "hosted_invoice_url": "https://invoice.stripe.com/i/x",
        "invoice_pdf": "https://pay.stripe.com/invoice/x/pdf",
    }
    return StripeInvoice(**(values | fields))


def add_invoices(stripe_server, customer: str, specs: list[dict]) -> list[dict]:
    return create_invoices(stripe_server.api_base, customer, specs)


def section(auth, htmx: bool = True):
    return auth.client.get("/settings/usage/invoices", headers=HX if htmx else {})


def rows(html: str) -> list[dict]:
    """The invoice rows of the section: id, number, period, amount, state, status text."""
    found = []
    for match in re.finditer(r'<tr class="invoice [^"]*" data-invoice="([^"]+)" '
                             r'data-state="([^"]+)">(.*?)</tr>', html, re.S):  # fmt: skip
        cells = match.group(3)

        def text(cls: str, cells: str = cells) -> str:
            found_cell = re.search(rf'class="[^"]*{cls}[^"]*">(.*?)</t[dh]>', cells, re.S)
            return " ".join(re.sub(r"<[^>]+>", " ", found_cell.group(1)).split())

        found.append(
            {
                "id": match.group(1),
                "state": match.group(2),
                "number": text("invoice-number"),
                "period": text("invoice-period"),
                "amount": text("invoice-amount"),
                "status": text("invoice-status"),
                "links": cells,
            }
        )
    return found


# Rows and statuses, without Stripe.


def test_amount_comes_from_integer_minor_units_exactly():
    row = invoice_row(stripe_invoice(amount_due=123456), dt.date(2026, 12, 1))
    assert row.amount == Decimal("1234.56") and isinstance(row.amount, Decimal)
    assert invoice_row(stripe_invoice(amount_due=1), dt.date(2026, 12, 1)).amount == Decimal("0.01")
    assert service.minor_units_to_amount(5000, "jpy") == Decimal(5000)
    assert service.minor_units_to_amount(1234, "kwd") == Decimal("1.234")


@pytest.mark.parametrize(
    ("today", "state"),
    [
        (dt.date(2026, 12, 30), InvoiceState.OPEN),
        (dt.date(2026, 12, 31), InvoiceState.OPEN),  # due today: not overdue yet
        (dt.date(2027, 1, 1), InvoiceState.OVERDUE),
    ],
)
def test_open_invoice_is_overdue_once_its_due_date_has_passed(today, state):
    assert invoice_row(stripe_invoice(), today).state is state


def test_overdue_goes_by_the_utc_date():
    # Due 23:30 UTC on 31 December: still 31 December in UTC, whatever the local time.
    due = utc("2026-12-31") + 23 * 3600 + 1800
    row = invoice_row(stripe_invoice(due_date=due), dt.date(2026, 12, 31))
    assert row.due_on == dt.date(2026, 12, 31) and row.state is InvoiceState.OPEN
    assert invoice_row(stripe_invoice(due_date=due), dt.date(2027, 1, 1)).state is (
        InvoiceState.OVERDUE
    )


@pytest.mark.parametrize(
    ("status", "state", "label"),
    [
        ("paid", InvoiceState.PAID, "Paid"),
        ("void", InvoiceState.VOID, "Void"),
        ("uncollectible", InvoiceState.UNCOLLECTIBLE, "Uncollectible"),
        ("open", InvoiceState.OVERDUE, "Overdue"),
        ("some_new_status", InvoiceState.OTHER, "Some new status"),
    ],
)
def test_statuses_are_told_apart(status, state, label):
    row = invoice_row(stripe_invoice(status=status), dt.date(2027, 2, 1))
    assert row.state is state and row.status_label == label


def test_paid_void_and_uncollectible_are_never_overdue():
    late = dt.date(2027, 6, 1)
    for status in ("paid", "void", "uncollectible"):
        assert invoice_state(status, dt.date(2026, 12, 31), late) is not InvoiceState.OVERDUE


def test_period_is_the_month_or_the_days_it_covers():
    today = dt.date(2026, 12, 1)
    assert invoice_row(stripe_invoice(), today).period_label == "November 2026"
    partial = stripe_invoice(period_start=utc("2026-11-12"), period_end=utc("2026-12-01"))
    assert invoice_row(partial, today).period_label == "12 Nov 2026 to 30 Nov 2026"
    instant = stripe_invoice(period_start=utc("2026-11-12"), period_end=utc("2026-11-12"))
    assert invoice_row(instant, today).period_label == "12 Nov 2026"


# The gateway's reads.


def test_gateway_returns_typed_rows(app, organisation, stripe_server):
    customer = organisation.stripe_customer_id
    add_invoices(stripe_server, customer, [{"period": "2026-11", "amount": 4200}])
    with app.app_context():
        from billing_app.stripe_gateway import gateway

        [invoice] = gateway().list_invoices(customer)
        again = gateway().invoice(invoice.id)
    assert isinstance(invoice, StripeInvoice)
    assert (invoice.customer, invoice.amount_due, invoice.currency) == (customer, 4200, "usd")
    assert invoice.period_start == utc("2026-11-01") and invoice.due_date == utc("2026-12-31")
    assert again.id == invoice.id and again.hosted_invoice_url != invoice.hosted_invoice_url


def _reader_gateway(stripe_server, timeout: float, retries: int) -> StripeGateway:
    reader = stripe.StripeClient(
        stripe_server.api_key,
        base_addresses={"api": stripe_server.api_base},
        max_network_retries=retries,
        http_client=stripe.RequestsClient(timeout=timeout),
    )
    return StripeGateway(client=None, reader=reader)  # type: ignore[arg-type]


def test_reads_have_a_short_timeout_of_their_own(app, stripe_server):
    assert app.config["STRIPE_READ_TIMEOUT"] < app.config["STRIPE_TIMEOUT"]
    with app.app_context():
        gateway = stripe_gateway.gateway()
    assert gateway.reader is not None and gateway.reader is not gateway.client
    slow = _reader_gateway(stripe_server, timeout=0.5, retries=1)
    stripe_server.fault(method="GET", path="^/v1/invoices", delay=3)
    started = time.monotonic()
    with pytest.raises(StripeRequestFailed) as failed:
        slow.list_invoices("cus_any")
    assert failed.value.reason == "timeout"
    assert time.monotonic() - started < 2.5  # two tries of 0.5 s and a back-off, not 30 s


def test_reads_are_retried(stripe_server, organisation):
    stripe_server.fault(method="GET", path="^/v1/invoices$", status=500, should_retry=True, times=1)
    stripe_server.clear_requests()
    invoices = _reader_gateway(stripe_server, timeout=2, retries=1).list_invoices(
        organisation.stripe_customer_id
    )
    assert invoices == []
    assert len(stripe_server.requests("/v1/invoices")) == 2


def test_default_read_settings_stay_within_a_few_seconds(monkeypatch, tmp_path):
    from billing_app import config

    for name in ("STRIPE_READ_TIMEOUT", "STRIPE_READ_MAX_RETRIES"):
        monkeypatch.delenv(name, raising=False)
    settings = config.from_environment(tmp_path)
    worst = settings["STRIPE_READ_TIMEOUT"] * (1 + settings["STRIPE_READ_MAX_RETRIES"])
    assert worst <= 5 < settings["STRIPE_TIMEOUT"] * (1 + settings["STRIPE_MAX_RETRIES"])
    monkeypatch.setenv("STRIPE_READ_TIMEOUT", "1.5")
    monkeypatch.setenv("STRIPE_READ_MAX_RETRIES", "0")
    settings = config.from_environment(tmp_path)
    assert (settings["STRIPE_READ_TIMEOUT"], settings["STRIPE_READ_MAX_RETRIES"]) == (1.5, 0)


# The section.


def test_page_renders_without_calling_stripe(auth, organisation, stripe_server):
    auth.as_role("admin")
    stripe_server.clear_requests()
    stripe_server.fault(path="^/v1/invoices", delay=5)
    started = time.monotonic()
    html = auth.client.get("/settings/usage").get_data(as_text=True)
    assert time.monotonic() - started < 2
    assert stripe_server.requests("/v1/invoices") == []
    assert 'id="invoices"' in html
    load = re.search(r'<a id="invoices-load" href="/settings/usage/invoices"[^>]*>', html, re.S)
    assert load and 'hx-get="/settings/usage/invoices"' in load.group(0)
    assert 'hx-trigger="load"' in load.group(0)
    assert "issued at the end of each month and are due in 30 days" in html


@pytest.mark.parametrize("role", ["admin", "billing"])
def test_section_lists_the_last_12_invoices_newest_first(auth, organisation, stripe_server, role):
    specs = [{"period": f"{2025 + (m > 12)}-{(m - 1) % 12 + 1:02d}", "amount": 100_000 + m}
             for m in range(1, 15)]  # fmt: skip
    for spec in specs:
        spec["status"] = "paid"
    add_invoices(stripe_server, organisation.stripe_customer_id, specs)
    auth.as_role(role)

    response = section(auth)

    assert response.status_code == 200
    assert response.headers["Vary"].startswith("HX-Request")
    shown = rows(response.get_data(as_text=True))
    assert len(shown) == 12
    assert shown[0]["period"] == "February 2026" and shown[-1]["period"] == "March 2025"
    assert shown[0]["amount"] == "$1,000.14"
    assert "<html" not in response.get_data(as_text=True)


def test_section_shows_each_status_with_its_due_date(auth, organisation, stripe_server):
    customer = organisation.stripe_customer_id
    today = dt.datetime.now(dt.UTC).date()
    month = today.replace(day=1)
    last = (month - dt.timedelta(days=1)).replace(day=1)
    add_invoices(
        stripe_server,
        customer,
        [
            {"period": "2025-06", "amount": 1000, "status": "uncollectible"},
            {"period": "2025-07", "amount": 2000, "status": "void"},
            {"period": "2025-08", "amount": 3000, "status": "paid"},
            {"period": "2025-09", "amount": 4000, "status": "open"},  # long past due
            {"period": f"{last:%Y-%m}", "amount": 5000, "status": "open"},
        ],
    )
    auth.as_role("admin")
    shown = {row["amount"]: row for row in rows(section(auth).get_data(as_text=True))}

    due = month + dt.timedelta(days=30)
    assert shown["$50.00"]["state"] == "open"
    assert shown["$50.00"]["status"] == f"Open due {due.day} {due:%b %Y}"
    assert shown["$40.00"]["state"] == "overdue"
    assert shown["$40.00"]["status"] == "Overdue was due 31 Oct 2025"
    assert shown["$30.00"]["status"] == "Paid"
    assert shown["$20.00"]["status"].startswith("Void")
    assert shown["$10.00"]["status"].startswith("Uncollectible")
    assert len({row["state"] for row in shown.values()}) == 5


def test_open_and_pdf_links_go_through_the_app_in_a_new_tab(auth, organisation, stripe_server):
    [made] = add_invoices(
        stripe_server, organisation.stripe_customer_id, [{"period": "2026-11", "amount": 1}]
    )
    auth.as_role("billing")
    [row] = rows(section(auth).get_data(as_text=True))
    links = re.findall(r"<a [^>]*>", row["links"])
    assert len(links) == 2
    assert f'href="/settings/usage/invoices/{made["id"]}"' in links[0]
    assert f'href="/settings/usage/invoices/{made["id"]}?pdf=1"' in links[1]
    for link in links:
        assert 'target="_blank"' in link and 'rel="noopener noreferrer"' in link
    assert "stripe" not in " ".join(re.findall(r'href="([^"]+)"', row["links"]))


def test_drafts_are_not_listed(app, auth, organisation, stripe_server, stripe_client):
    customer = organisation.stripe_customer_id
    add_invoices(stripe_server, customer, [{"period": "2026-10", "amount": 700}])
    [draft] = add_invoices(
        stripe_server, customer, [{"period": "2026-11", "amount": 999, "status": "draft"}]
    )
    assert draft["status"] == "draft" and draft["hosted_invoice_url"] is None
    auth.as_role("admin")
    shown = rows(section(auth).get_data(as_text=True))
    assert [row["amount"] for row in shown] == ["$7.00"]


def test_empty_state(auth, organisation):
    auth.as_role("admin")
    html = section(auth).get_data(as_text=True)
    assert 'id="invoices-empty"' in html and "No invoices yet" in html
    assert "invoices-table" not in html


def test_organisation_without_a_stripe_customer(app, auth, stripe_server):
    with app.app_context():
        make_organisation(stripe_customer_id=None)
    auth.as_role("admin")
    stripe_server.clear_requests()
    response = section(auth)
    assert response.status_code == 200
    assert "once your organisation is linked to Stripe" in response.get_data(as_text=True)
    assert stripe_server.requests("/v1/invoices") == []


def test_customer_stripe_no_longer_knows(app, auth, stripe_server):
    with app.app_context():
        make_organisation(stripe_customer_id="cus_gone")
    auth.as_role("admin")
    response = section(auth)
    assert response.status_code == 409
    assert "Stripe account not found" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("fault", "status", "says"),
    [
        ({"status": 500}, 502, "Stripe had a problem"),
        ({"status": 429}, 503, "Stripe is busy"),
        ({"delay": 3}, 504, "Stripe did not answer in time"),
    ],
)
def test_stripe_failing_or_slow_says_so_with_a_retry(
    auth, organisation, stripe_server, billing_log, fault, status, says
):
    auth.as_role("admin")
    stripe_server.fault(method="GET", path="^/v1/invoices$", **fault)
    started = time.monotonic()
    response = section(auth)
    assert time.monotonic() - started < 2.5  # the read timeout in tests is 1 s
    html = response.get_data(as_text=True)
    assert response.status_code == status
    assert says in html and 'role="alert"' in html
    retry = re.search(r'<a class="button" id="invoices-retry"[^>]*>', html, re.S).group(0)
    assert 'href="/settings/usage/invoices"' in retry
    assert 'hx-get="/settings/usage/invoices"' in retry
    assert "invoices not read from Stripe" in billing_log.text
    stripe_server.clear_faults()
    assert section(auth).status_code == 200


def test_without_javascript_the_section_is_a_page_of_its_own(auth, organisation, stripe_server):
    add_invoices(
        stripe_server, organisation.stripe_customer_id, [{"period": "2026-11", "amount": 2500}]
    )
    auth.as_role("admin")
    response = section(auth, htmx=False)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" in html and "Settings · Usage · Invoices" in html
    assert [row["amount"] for row in rows(html)] == ["$25.00"]
    assert 'href="/settings/usage"' in html


def test_full_member_sees_no_invoices_section(auth, organisation):
    auth.as_role("full_member")
    html = auth.client.get("/settings/usage").get_data(as_text=True)
    assert 'id="invoices"' not in html and "/settings/usage/invoices" not in html


@pytest.mark.parametrize("role", ["admin", "billing"])
def test_admin_and_billing_see_the_section(auth, organisation, role):
    auth.as_role(role)
    assert 'id="invoices"' in auth.client.get("/settings/usage").get_data(as_text=True)


# The open route.


def test_open_redirects_to_the_current_stripe_page(auth, organisation, stripe_server):
    [made] = add_invoices(
        stripe_server, organisation.stripe_customer_id, [{"period": "2026-11", "amount": 1}]
    )
    auth.as_role("admin")
    stripe_server.clear_requests()

    first = auth.client.get(f"/settings/usage/invoices/{made['id']}")
    second = auth.client.get(f"/settings/usage/invoices/{made['id']}")

    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] != second.headers["Location"]  # fetched at each click
    assert first.headers["Cache-Control"] == "no-store"
    assert [r["path"] for r in stripe_server.requests("/v1/invoices")] == [
        f"/v1/invoices/{made['id']}"
    ] * 2
    with urllib.request.urlopen(first.headers["Location"], timeout=5) as page:  # noqa: S310
        assert made["number"] in page.read().decode()


def test_open_pdf_redirects_to_the_current_pdf(auth, organisation, stripe_server):
    [made] = add_invoices(
        stripe_server, organisation.stripe_customer_id, [{"period": "2026-11", "amount": 1}]
    )
    auth.as_role("billing")
    response = auth.client.get(f"/settings/usage/invoices/{made['id']}?pdf=1")
    assert response.status_code == 303
    with urllib.request.urlopen(response.headers["Location"], timeout=5) as pdf:  # noqa: S310
        assert pdf.headers["Content-Type"] == "application/pdf"
        assert pdf.read().startswith(b"%PDF-")


@pytest.mark.parametrize(
    ("role", "status"),
    [("admin", 303), ("billing", 303), ("full_member", 403), ("external_guest", 403)],
)
def test_open_route_per_role_with_a_real_invoice(auth, organisation, stripe_server, role, status):
    [made] = add_invoices(
        stripe_server, organisation.stripe_customer_id, [{"period": "2026-11", "amount": 1}]
    )
    auth.as_role(role)
    assert auth.client.get(f"/settings/usage/invoices/{made['id']}").status_code == status
    assert section(auth).status_code == (200 if status == 303 else 403)


def test_another_customers_invoice_is_404(
    auth, organisation, stripe_server, stripe_client, billing_log
):
    other = stripe_client.v1.customers.create(params={"email": "ap@fabrikam.example"}).id
    [theirs] = add_invoices(stripe_server, other, [{"period": "2026-11", "amount": 1}])
    auth.as_role("admin")
    response = auth.client.get(f"/settings/usage/invoices/{theirs['id']}")
    assert response.status_code == 404
    assert "stripe" not in response.headers.get("Location", "")
    assert theirs["number"] not in response.get_data(as_text=True)
    assert "invoice of another customer" in billing_log.text
    assert auth.client.get(f"/settings/usage/invoices/{theirs['id']}?pdf=1").status_code == 404


def test_unknown_invoice_is_404(auth, organisation, stripe_server):
    auth.as_role("admin")
    assert auth.client.get("/settings/usage/invoices/in_unknown123").status_code == 404
    stripe_server.clear_requests()
    for bad in ("cus_123", "in_..%2F..", "in_" + "a" * 80):
        assert auth.client.get(f"/settings/usage/invoices/{bad}").status_code == 404
    assert stripe_server.requests("/v1/invoices") == []  # not even asked


def test_open_when_stripe_fails_explains_in_that_tab(auth, organisation, stripe_server):
    [made] = add_invoices(
        stripe_server, organisation.stripe_customer_id, [{"period": "2026-11", "amount": 1}]
    )
    auth.as_role("admin")
    stripe_server.fault(method="GET", path="^/v1/invoices/", status=500)
    response = auth.client.get(f"/settings/usage/invoices/{made['id']}?pdf=1")
    html = response.get_data(as_text=True)
    assert response.status_code == 502
    assert "The invoice could not be opened" in html
    assert f'href="/settings/usage/invoices/{made["id"]}?pdf=1">Try again' in html


def test_organisation_without_customer_has_no_invoice_to_open(app, auth, stripe_server):
    with app.app_context():
        make_organisation(stripe_customer_id=None)
    auth.as_role("admin")
    assert auth.client.get("/settings/usage/invoices/in_abc").status_code == 404


# `make run`: the demo invoices.


def test_demo_invoices_give_the_demo_customer_a_year(app, stripe_client):
    demo_cli.init_app(app)
    runner = app.test_cli_runner()
    for args in (["usage", "import", str(DEMO_FILE)], ["billing", "link-stripe", "northwind-msp"]):
        assert runner.invoke(args=args).exit_code == 0

    result = runner.invoke(args=["demo", "invoices", "northwind-msp"])

    assert result.exit_code == 0, result.output
    with app.app_context():
        organisation = db.session.scalar(select(Organisation))
        customer = organisation.stripe_customer_id
        today = dt.datetime.now(dt.UTC).date()
        last_month = Month.of(today).previous()
        cost = month_summary(organisation, last_month, today).cost
    invoices = stripe_client.v1.invoices.list(params={"customer": customer, "limit": 100}).data
    shown = [invoice_row(stripe_gateway._invoice(i), today) for i in invoices]
    states = [row.state for row in shown]
    months = {row.period_first for row in shown}
    assert len(months) == min(12, len(available_months(today)) - 1)
    newest = shown[0]
    assert newest.period_first == last_month.first_day and newest.state is InvoiceState.OPEN
    assert newest.due_on == today.replace(day=1) + dt.timedelta(days=30)
    assert newest.amount == cost  # the month's usage, to the cent
    assert states.count(InvoiceState.OVERDUE) == 1 and states.count(InvoiceState.VOID) == 1
    assert states.count(InvoiceState.PAID) == len(shown) - 3

    again = runner.invoke(args=["demo", "invoices", "northwind-msp"])
    assert again.exit_code == 0 and "already has invoices" in again.output
    assert len(stripe_client.v1.invoices.list(params={"customer": customer, "limit": 100})) == len(
        invoices
    )


def test_demo_invoices_need_a_stripe_customer(app):
    with app.app_context():
        make_organisation(stripe_customer_id=None)
    demo_cli.init_app(app)
    result = app.test_cli_runner().invoke(args=["demo", "invoices", "northwind-msp"])
    assert result.exit_code == 1 and "link-stripe" in result.output


def test_organisation_column_unchanged_by_reads(app, auth, organisation, stripe_server):
    auth.as_role("admin")
    section(auth)
    with app.app_context():
        stored = db.session.scalar(select(Organisation))
        assert stored.stripe_customer_id == organisation.stripe_customer_id


# What is owed, first.


def test_past_due_banner_comes_from_the_same_read_and_sits_at_the_top(
    auth, organisation, stripe_server
):
    made = add_invoices(
        stripe_server,
        organisation.stripe_customer_id,
        [
            {"period": "2025-08", "amount": 3000, "status": "paid"},
            {"period": "2025-09", "amount": 4000, "status": "open"},  # due 31 Oct 2025
            {"period": "2025-10", "amount": 1234, "status": "open"},  # due 30 Nov 2025
        ],
    )
    auth.as_role("billing")
    page = auth.client.get("/settings/usage").get_data(as_text=True)
    # The page itself does not wait on Stripe: the slot at the top is empty until the
    # invoices are read.
    assert page.index('id="amount-due"') < page.index('id="billing-heading"')
    assert "amount-due-banner" not in page
    stripe_server.clear_requests()
    html = section(auth).get_data(as_text=True)
    assert len([r for r in stripe_server.requests("/v1/invoices")]) == 1
    banner = re.search(
        r'<div id="amount-due"[^>]*hx-swap-oob="true"[^>]*>(.*?)</div>\s*</div>', html, re.S
    )
    assert banner is not None
    text = " ".join(re.sub(r"<[^>]+>", " ", banner.group(1)).split())
    september = made[1]
    assert text.startswith(
        "Past due: $52.34 , since 31 Oct 2025. 2 invoices are overdue, the oldest"
    )
    pay = re.search(r'<a [^>]*id="amount-due-pay"[^>]*>', banner.group(1)).group(0)
    assert f'href="/settings/usage/invoices/{september["id"]}"' in pay
    # Without JavaScript the invoices page opens on the same banner.
    plain = section(auth, htmx=False).get_data(as_text=True)
    assert plain.index("amount-due-banner") < plain.index('id="invoices-heading"')
    assert "hx-swap-oob" not in plain


def test_nothing_owed_or_stripe_down_shows_no_banner(auth, organisation, stripe_server):
    add_invoices(
        stripe_server,
        organisation.stripe_customer_id,
        [{"period": "2025-09", "amount": 4000, "status": "open"}],
    )
    auth.as_role("admin")
    stripe_server.fault(method="GET", path="^/v1/invoices$", status=500)
    html = section(auth).get_data(as_text=True)
    assert "invoices-problem" in html and "amount-due-banner" not in html
    stripe_server.clear_faults()
    assert "Past due: $40.00</strong>" in section(auth).get_data(as_text=True)


def test_amount_due_before_its_date_is_not_past_due():
    today = dt.date(2026, 12, 6)
    shown = service.InvoiceList(
        rows=(
            invoice_row(stripe_invoice(amount_due=5000), today),
            invoice_row(stripe_invoice(id="in_paid", status="paid", amount_due=7000), today),
        )
    )
    due = shown.amount_due
    assert due.total == Decimal("50.00") and not due.past_due
    assert due.first.id == "in_test1"
    assert service.InvoiceList(rows=()).amount_due is None
