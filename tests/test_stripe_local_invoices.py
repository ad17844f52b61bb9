"""Invoices on the local Stripe server: Stripe's shape through the official SDK, expiring links,
the hosted page and PDF, the fault switch, and the invoices `make run` gives the demo."""

from __future__ import annotations

import datetime as dt
import re
import time
import urllib.error
import urllib.request

import pytest
import stripe

from dev.stripe_local.invoices import create_invoices, demo_year, main, parse_spec

FIELDS = (
    "number",
    "status",
    "amount_due",
    "amount_paid",
    "currency",
    "created",
    "due_date",
    "period_start",
    "period_end",
    "hosted_invoice_url",
    "invoice_pdf",
    "collection_method",
)


def utc(day: str) -> int:
    return int(dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp())


def fetch(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


@pytest.fixture
def customer(stripe_client: stripe.StripeClient) -> str:
    return stripe_client.v1.customers.create(params={"email": "ap@contoso.example"}).id


@pytest.fixture(autouse=True)
def _no_faults(stripe_server):
    stripe_server.clear_faults()
    yield
    stripe_server.clear_faults()


def test_invoice_has_stripes_shape(stripe_server, stripe_client, customer):
    [created] = create_invoices(
        stripe_server.api_base,
        customer,
        [{"period": "2026-11", "amount": 123456, "currency": "eur", "status": "open"}],
    )

    invoice = stripe_client.v1.invoices.retrieve(created["id"])

    assert isinstance(invoice, stripe.Invoice)
    assert invoice.id.startswith("in_") and invoice.customer == customer
    for name in FIELDS:
        assert name in invoice, name
    assert re.fullmatch(r"[0-9A-F]{8}-0001", invoice.number)
    assert invoice.status == "open"
    assert (invoice.amount_due, invoice.amount_paid, invoice.currency) == (123456, 0, "eur")
    assert invoice.collection_method == "send_invoice"
    assert invoice.period_start == utc("2026-11-01") and invoice.period_end == utc("2026-12-01")
    # Issued at the month's end, due 30 days later.
    assert invoice.created == utc("2026-12-01")
    assert invoice.due_date == utc("2026-12-31")
    assert invoice.hosted_invoice_url.startswith(stripe_server.api_base + "/p/invoices/")
    assert invoice.invoice_pdf.startswith(stripe_server.api_base + "/p/invoices/")


def test_statuses_and_amount_paid(stripe_server, stripe_client, customer):
    made = create_invoices(
        stripe_server.api_base,
        customer,
        [
            {"period": f"2026-0{n}", "amount": 1000, "status": status}
            for n, status in enumerate(("paid", "open", "void", "uncollectible"), start=1)
        ],
    )
    invoices = {i["status"]: stripe_client.v1.invoices.retrieve(i["id"]) for i in made}
    assert set(invoices) == {"paid", "open", "void", "uncollectible"}
    assert invoices["paid"].amount_paid == 1000
    assert invoices["open"].amount_paid == 0 and invoices["void"].amount_paid == 0
    assert invoices["uncollectible"].amount_remaining == 0
    assert invoices["paid"].status_transitions.paid_at is not None
    assert invoices["void"].status_transitions.voided_at is not None


def test_list_is_by_customer_newest_first_with_limit_and_starting_after(
    stripe_server, stripe_client, customer
):
    other = stripe_client.v1.customers.create(params={"email": "ap@fabrikam.example"}).id
    specs = [{"period": f"2026-{m:02d}", "amount": m * 100} for m in range(1, 8)]
    create_invoices(stripe_server.api_base, customer, specs)
    create_invoices(stripe_server.api_base, other, [{"period": "2026-08", "amount": 1}])

    first = stripe_client.v1.invoices.list(params={"customer": customer, "limit": 3})
    assert [i.amount_due for i in first.data] == [700, 600, 500]
    assert first.has_more is True
    rest = stripe_client.v1.invoices.list(
        params={"customer": customer, "limit": 10, "starting_after": first.data[-1].id}
    )
    assert [i.amount_due for i in rest.data] == [400, 300, 200, 100]
    assert rest.has_more is False
    assert {i.customer for i in first.data + rest.data} == {customer}


def test_listing_for_an_unknown_customer_is_resource_missing(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_client.v1.invoices.list(params={"customer": "cus_nobody"})
    assert raised.value.code == "resource_missing"
    assert raised.value.param == "customer"


def test_unknown_invoice_is_stripes_404(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_client.v1.invoices.retrieve("in_doesnotexist")
    assert raised.value.http_status == 404
    assert raised.value.code == "resource_missing"


def test_links_change_on_each_retrieve_and_each_one_opens(stripe_server, stripe_client, customer):
    [made] = create_invoices(
        stripe_server.api_base, customer, [{"period": "2026-10", "amount": 4999}]
    )
    one = stripe_client.v1.invoices.retrieve(made["id"])
    two = stripe_client.v1.invoices.retrieve(made["id"])
    assert one.hosted_invoice_url != two.hosted_invoice_url
    assert one.invoice_pdf != two.invoice_pdf

    for invoice in (one, two):
        status, content_type, body = fetch(invoice.hosted_invoice_url)
        assert status == 200 and content_type.startswith("text/html")
        assert f'<span id="invoice-number">{invoice.number}</span>' in body.decode()
        assert "49.99 USD" in body.decode()


def test_pdf_is_a_small_valid_pdf(stripe_server, stripe_client, customer):
    [made] = create_invoices(
        stripe_server.api_base, customer, [{"period": "2026-10", "amount": 4999}]
    )
    invoice = stripe_client.v1.invoices.retrieve(made["id"])

    status, content_type, pdf = fetch(invoice.invoice_pdf)

    assert status == 200 and content_type == "application/pdf"
    assert pdf.startswith(b"%PDF-1.4\n") and pdf.rstrip().endswith(b"%%EOF")
    assert len(pdf) < 4000
    assert f"Invoice {invoice.number}".encode() in pdf
    # The cross-reference table points at each object.
    xref = int(pdf.rsplit(b"startxref\n", 1)[1].split()[0])
    assert pdf[xref:].startswith(b"xref\n0 6\n")
    offsets = [int(line.split()[0]) for line in pdf[xref:].split(b"\n")[3:8]]
    for number, offset in enumerate(offsets, start=1):
        assert pdf[offset:].startswith(b"%d 0 obj" % number)


def test_unknown_or_expired_link_is_404(stripe_server):
    status, _, body = fetch(stripe_server.api_base + "/p/invoices/inv_notatoken")
    assert status == 404
    assert b"Link expired" in body


def test_fault_switch_works_on_invoice_paths(stripe_server, stripe_client, customer):
    [made] = create_invoices(stripe_server.api_base, customer, [{"period": "2026-10", "amount": 1}])
    stripe_server.fault(method="GET", path="^/v1/invoices", status=500, times=2)
    with pytest.raises(stripe.APIError):
        stripe_client.v1.invoices.list(params={"customer": customer})
    with pytest.raises(stripe.APIError):
        stripe_client.v1.invoices.retrieve(made["id"])
    assert stripe_client.v1.invoices.retrieve(made["id"]).id == made["id"]

    stripe_server.fault(method="GET", path="^/v1/invoices$", delay=1.0, times=1)
    started = time.monotonic()
    stripe_client.v1.invoices.list(params={"customer": customer})
    assert time.monotonic() - started >= 1.0

    url = stripe_client.v1.invoices.retrieve(made["id"]).hosted_invoice_url
    stripe_server.fault(path="^/p/invoices/", status=503, times=1)
    assert fetch(url)[0] == 503
    assert fetch(url)[0] == 200


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"period": "2026-13", "amount": 1}, "period must be a month"),
        ({"period": "2026-11", "amount": 1.5}, "amount must be a whole number"),
        ({"period": "2026-11", "amount": 1, "status": "paid_maybe"}, "status must be one of"),
        ({"period": "2026-11", "amount": 1, "colour": "red"}, "unknown invoice field"),
        ({"period_start": "2026-11-05", "period_end": "2026-11-01", "amount": 1}, "after"),
    ],
)
def test_bad_invoice_specs_are_refused(stripe_server, customer, spec, message):
    with pytest.raises(ValueError, match=message):
        parse_spec(spec)
    with pytest.raises(RuntimeError, match="400"):
        create_invoices(stripe_server.api_base, customer, [spec])


def test_unknown_customer_is_refused(stripe_server):
    with pytest.raises(RuntimeError, match="no such customer"):
        create_invoices(stripe_server.api_base, "cus_nobody", [{"period": "2026-11", "amount": 1}])


def test_demo_year_has_paid_open_overdue_and_void_invoices():
    specs = demo_year(dt.date(2027, 3, 15), {"2027-02": 98765})
    months = [s["period"] for s in specs]
    assert months[0] == "2026-03" and months[-1] == "2027-02"
    assert len({*months}) == 12 and len(specs) == 13  # a voided one issued again
    last = specs[-1]
    assert last == {"period": "2027-02", "amount": 98765, "currency": "usd", "status": "open"}
    statuses = [s["status"] for s in specs]
    assert statuses.count("void") == 1 and statuses.count("open") == 2
    assert statuses.count("paid") == 10
    # The other open one was issued three month ends ago: long past its 30 days.
    assert [s["period"] for s in specs if s["status"] == "open"] == ["2026-12", "2027-02"]


def test_demo_year_starts_no_earlier_than_asked():
    specs = demo_year(dt.date(2026, 12, 1), since=dt.date(2026, 1, 1))
    assert specs[0]["period"] == "2026-01" and specs[-1]["period"] == "2026-11"


def test_command_gives_a_customer_a_year(stripe_server, stripe_client, customer, capsys):
    main(["--api-base", stripe_server.api_base, "--today", "2027-01-10", customer])
    assert f"Created 13 invoices for {customer}." in capsys.readouterr().out
    invoices = stripe_client.v1.invoices.list(params={"customer": customer, "limit": 20}).data
    assert len(invoices) == 13
    assert invoices[0].period_start == utc("2026-12-01") and invoices[0].status == "open"
