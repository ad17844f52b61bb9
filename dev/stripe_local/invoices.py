"""Invoices on the local Stripe server, in Stripe's shape, kept in localstripe's own store.

localstripe already stores invoices and answers ``GET /v1/invoices?customer=…&limit=…&
starting_after=…`` (newest first) and ``GET /v1/invoices/{id}``. This module extends those
invoices with what Stripe's invoicing shows a customer: a ``number``, ``collection_method``
``send_invoice`` with a ``due_date``, the billing period, the ``uncollectible`` status and
payment out of band, and a hosted invoice page and PDF. As at Stripe, those two links do not
last: every retrieve (or list) hands out new ones, each valid for ``LINK_TTL`` seconds.

Test-only endpoint (no API key needed): ``POST /_invoices`` with JSON ``{"customer": "cus_…",
"invoices": [spec, …]}`` creates invoices, where a spec is ``period`` (``YYYY-MM``) or
``period_start``/``period_end`` (``YYYY-MM-DD``, end exclusive), ``amount`` (integer minor
units), ``currency``, ``status`` (``draft``, ``open``, ``paid``, ``void``, ``uncollectible``)
and optional ``created`` (``YYYY-MM-DD``, default the period's end: issued at month end) and
``days_until_due`` (default 30). It answers the created invoices.

``python -m dev.stripe_local.invoices --api-base URL CUSTOMER`` gives a customer a year of
invoices (see :func:`demo_year`); tests call :func:`create_invoices`.

``POST /v1/invoices/{id}/finalize`` (the SDK's ``invoices.finalize_invoice``) finalizes a draft
made here and sends the signed ``invoice.finalized`` event to the registered webhooks.
"""

from __future__ import annotations

import argparse
import contextvars
import datetime as dt
import hashlib
import html
import json
import secrets
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any

LINK_TTL = 3600.0
DAYS_UNTIL_DUE = 30
STATUSES = ("draft", "open", "paid", "void", "uncollectible")
PAGE_PATH = "/p/invoices/{token}"
PDF_PATH = "/p/invoices/{token}/pdf"

_base_url: contextvars.ContextVar[str] = contextvars.ContextVar(
    "stripe_local_base_url", default="http://127.0.0.1"
)


class InvoiceSpecError(ValueError):
    """A posted invoice spec is not one this server can create."""


def _timestamp(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp())


def _day(value: Any, name: str) -> dt.date:
    if not isinstance(value, str):
        raise InvoiceSpecError(f"{name} must be a date (YYYY-MM-DD)")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvoiceSpecError(f"{name} must be a date (YYYY-MM-DD), not {value!r}") from None


def _next_month(day: dt.date) -> dt.date:
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def parse_spec(spec: Any) -> dict:
    """The invoice a posted spec asks for, checked; raise InvoiceSpecError when it is wrong."""
    if not isinstance(spec, dict):
        raise InvoiceSpecError("an invoice spec is a JSON object")
    known = {"period", "period_start", "period_end", "amount", "currency", "status"}
    unknown = set(spec) - known - {"created", "days_until_due", "description"}
    if unknown:
        raise InvoiceSpecError(f"unknown invoice field(s): {', '.join(sorted(unknown))}")
    if "period" in spec:
        try:
            start = dt.date.fromisoformat(f"{spec['period']}-01")
        except (TypeError, ValueError):
            raise InvoiceSpecError("period must be a month (YYYY-MM)") from None
        end = _next_month(start)
    else:
        start = _day(spec.get("period_start"), "period_start")
        end = _day(spec.get("period_end"), "period_end")
    if end <= start:
        raise InvoiceSpecError("period_end must be after period_start")
    amount = spec.get("amount")
    if type(amount) is not int or amount < 0:
        raise InvoiceSpecError("amount must be a whole number of minor units (cents)")
    currency = spec.get("currency", "usd")
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha()):
        raise InvoiceSpecError("currency must be a three-letter ISO code")
    status = spec.get("status", "open")
    if status not in STATUSES:
        raise InvoiceSpecError(f"status must be one of {', '.join(STATUSES)}")
    created = _day(spec["created"], "created") if "created" in spec else end
    days = spec.get("days_until_due", DAYS_UNTIL_DUE)
    if type(days) is not int or not 0 <= days <= 365:
        raise InvoiceSpecError("days_until_due must be a whole number of days (0-365)")
    description = spec.get("description") or f"Petra usage {start:%B %Y}"
    return {
        "period_start": _timestamp(start),
        "period_end": _timestamp(end),
        "amount": amount,
        "currency": currency.lower(),
        "status": status,
        "created": _timestamp(created),
        "days_until_due": days,
        "description": str(description),
    }


def invoice_class(ls_resources: Any) -> type:
    """localstripe's Invoice, extended with Stripe's invoicing fields (same store, same routes)."""
    base = ls_resources.Invoice

    class SentInvoice(base):
        """An invoice sent to the customer (``send_invoice``), due some days after issue."""

        def __init__(self, customer: str, spec: dict, links: Links) -> None:
            item = ls_resources.InvoiceItem(
                customer=customer,
                amount=spec["amount"],
                currency=spec["currency"],
                period_start=spec["period_start"],
                period_end=spec["period_end"],
                description=spec["description"],
            )
            self._links = links
            self._number = None
            self._due_date = None
            self._uncollectible = False
            self._paid_out_of_band = False
            super().__init__(customer=customer, items=[item], date=spec["created"])
            self.created = spec["created"]
            self.period_start = spec["period_start"]
            self.period_end = spec["period_end"]
            self.collection_method = "send_invoice"
            self.billing_reason = "manual"
            self.currency = spec["currency"]
            status = spec["status"]
            if status == "draft":
                return
            self._number = _invoice_number(customer, ls_resources.store)
            self._due_date = spec["created"] + spec["days_until_due"] * 86400
            self._draft = False
            self.status_transitions["finalized_at"] = spec["created"]
            if status == "paid":
                self._paid_out_of_band = True
                self.status_transitions["paid_at"] = min(self._due_date, int(time.time()))
            elif status == "void":
                self._voided = True
                self.status_transitions["voided_at"] = spec["created"] + 86400
            elif status == "uncollectible":
                self._uncollectible = True
                self.status_transitions["marked_uncollectible_at"] = self._due_date

        @property
        def status(self) -> str:
            if getattr(self, "_uncollectible", False) and not self._draft:
                return "uncollectible"
            if getattr(self, "_paid_out_of_band", False) and not self._draft:
                return "paid"
            return base.status.fget(self)

        @property
        def paid_out_of_band(self) -> bool:
            return getattr(self, "_paid_out_of_band", False)

        @property
        def number(self) -> str | None:
            return getattr(self, "_number", None)

        @property
        def due_date(self) -> int | None:
            return getattr(self, "_due_date", None)

        @property
        def amount_remaining(self) -> int:
            return self.amount_due - self.amount_paid if self.status == "open" else 0

        @property
        def hosted_invoice_url(self) -> str | None:
            links = getattr(self, "_links", None)
            if links is None or self._draft:
                return None
            return _base_url.get() + PAGE_PATH.format(token=links.mint(self.id))

        @property
        def invoice_pdf(self) -> str | None:
            links = getattr(self, "_links", None)
            if links is None or self._draft:
                return None
            return _base_url.get() + PDF_PATH.format(token=links.mint(self.id))

    return SentInvoice


def _invoice_number(customer: str, store: dict) -> str:
    """Stripe's numbering: the customer's invoice prefix and a sequence, e.g. ``3F1A09C2-0004``."""
    prefix = hashlib.sha256(customer.encode()).hexdigest()[:8].upper()
    count = sum(
        1
        for key, value in list(store.items())
        if key.startswith("invoice:")
        and getattr(value, "customer", None) == customer
        and getattr(value, "_number", None)
    )
    return f"{prefix}-{count + 1:04d}"


class Links:
    """Short-lived tokens for the hosted invoice page and PDF, minted on every retrieve."""

    def __init__(self, ttl: float = LINK_TTL) -> None:
        self.ttl = ttl
        self.tokens: dict[str, tuple[str, float]] = {}

    def mint(self, invoice_id: str) -> str:
        now = time.monotonic()
        for token in [t for t, (_, expires) in self.tokens.items() if expires <= now]:
            del self.tokens[token]
        token = "inv_" + secrets.token_urlsafe(18)
        self.tokens[token] = (invoice_id, now + self.ttl)
        return token

    def invoice_id(self, token: str) -> str | None:
        entry = self.tokens.get(token)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]


def _money(amount: int, currency: str) -> str:
    return f"{amount // 100:,}.{amount % 100:02d} {currency.upper()}"


def _date(timestamp: int | None) -> str:
    if timestamp is None:
        return "—"
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%-d %B %Y")


def invoice_pdf(invoice: Any) -> bytes:
    """A one-page PDF of the invoice: number, period, amount, status and due date."""
    lines = [
        f"Invoice {invoice.number}",
        f"Period: {_date(invoice.period_start)} to {_date(invoice.period_end - 1)}",
        f"Amount due: {_money(invoice.amount_due, invoice.currency)}",
        f"Status: {invoice.status}",
        f"Due: {_date(invoice.due_date)}",
    ]
    text = "BT /F1 12 Tf 72 760 Td 16 TL " + " ".join(
        "(" + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") '"
        for line in lines
    )
    stream = text.encode("latin-1", "replace") + b" ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 36rem; margin: 3rem auto;
       padding: 0 1rem; color: #1f2333; line-height: 1.5; }}
dt {{ font-weight: 600; }} dd {{ margin: 0 0 .75rem; }}
</style>
</head>
<body>
<main>
{body}
</main>
</body>
</html>
"""


def install(app: Any, ls_resources: Any, web: Any) -> None:
    """Add the invoice pages, the control endpoint and the invoice fields to the server."""
    links = Links()
    invoice_cls = invoice_class(ls_resources)

    @web.middleware
    async def remember_base_url(request, handler):
        _base_url.set(f"{request.scheme}://{request.host}")
        customer = request.query.get("customer")
        unknown = customer is not None and f"customer:{customer}" not in ls_resources.store
        if request.path == "/v1/invoices" and unknown:
            # As Stripe answers a list filtered by a customer it does not know.
            error = {
                "type": "invalid_request_error",
                "code": "resource_missing",
                "param": "customer",
                "message": f"No such customer: '{customer}'",
            }
            return web.json_response({"error": error}, status=400)
        return await handler(request)

    def find(token: str) -> Any:
        invoice_id = links.invoice_id(token)
        invoice = ls_resources.store.get(f"invoice:{invoice_id}") if invoice_id else None
        if invoice is None:
            raise web.HTTPNotFound(
                text=_PAGE.format(
                    title="Link expired",
                    body="<h1>Link expired</h1><p>This invoice link is not valid or has "
                    "expired. Open the invoice again from where you found it.</p>",
                ),
                content_type="text/html",
            )
        return invoice

    async def page(request):
        invoice = find(request.match_info["token"])
        number = html.escape(invoice.number or invoice.id)
        pdf = html.escape(invoice.invoice_pdf or "")
        body = f"""<h1>Invoice <span id="invoice-number">{number}</span></h1>
<dl>
<dt>Status</dt><dd id="invoice-status">{html.escape(invoice.status)}</dd>
<dt>Amount due</dt><dd id="invoice-amount">{_money(invoice.amount_due, invoice.currency)}</dd>
<dt>Period</dt><dd>{_date(invoice.period_start)} to {_date(invoice.period_end - 1)}</dd>
<dt>Due</dt><dd id="invoice-due">{_date(invoice.due_date)}</dd>
</dl>
<p><a href="{pdf}">Download invoice (PDF)</a></p>"""
        return web.Response(
            text=_PAGE.format(title=f"Invoice {number}", body=body),
            content_type="text/html",
            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
        )

    async def pdf(request):
        invoice = find(request.match_info["token"])
        return web.Response(
            body=invoice_pdf(invoice),
            content_type="application/pdf",
            headers={
                "Content-Disposition": f'inline; filename="Invoice-{invoice.number}.pdf"',
                "Cache-Control": "no-store",
            },
        )

    async def create(request):
        try:
            data = await request.json()
            if not isinstance(data, dict):
                raise InvoiceSpecError("send a JSON object")
            customer = _customer(data, ls_resources)
            invoices = data.get("invoices")
            if not isinstance(invoices, list):
                raise InvoiceSpecError("invoices must be a list of invoice specs")
            specs = [parse_spec(spec) for spec in invoices]
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        created = [invoice_cls(customer, spec, links)._export() for spec in specs]
        return web.json_response({"customer": customer, "invoices": created}, status=201)

    async def finalize(request):
        """``POST /v1/invoices/{id}/finalize``: a draft gets its number and due date, and the
        ``invoice.finalized`` event goes to the registered webhooks, signed, as at Stripe."""
        invoice = ls_resources.store.get(f"invoice:{request.match_info['id']}")
        if not isinstance(invoice, invoice_cls):
            error = {
                "type": "invalid_request_error",
                "code": "resource_missing",
                "message": f"No such invoice: '{request.match_info['id']}'",
            }
            return web.json_response({"error": error}, status=404)
        if not invoice._draft:
            error = {
                "type": "invalid_request_error",
                "code": "invoice_unexpected_status",
                "message": "This invoice is already finalized.",
            }
            return web.json_response({"error": error}, status=400)
        now = int(time.time())
        invoice._number = _invoice_number(invoice.customer, ls_resources.store)
        invoice._due_date = now + DAYS_UNTIL_DUE * 86400
        invoice._draft = False
        invoice.status_transitions["finalized_at"] = now
        ls_resources.schedule_webhook(ls_resources.Event("invoice.finalized", invoice))
        return web.json_response(invoice._export())

    app.middlewares.append(remember_base_url)
    app.router.add_post("/v1/invoices/{id}/finalize", finalize)
    app.router.add_get(PAGE_PATH.replace("{token}", "{token:inv_[A-Za-z0-9_-]+}"), page)
    app.router.add_get(PDF_PATH.replace("{token}", "{token:inv_[A-Za-z0-9_-]+}"), pdf)
    app.router.add_post("/_invoices", create)


def _customer(data: dict, ls_resources: Any) -> str:
    customer = data.get("customer")
    if not isinstance(customer, str) or f"customer:{customer}" not in ls_resources.store:
        raise InvoiceSpecError(f"no such customer: {customer!r}")
    return customer


# Client side: for tests, scripts and `make run`.


def create_invoices(api_base: str, customer: str, specs: Iterable[dict]) -> list[dict]:
    """Create finalized invoices for `customer` on the local Stripe server at `api_base`."""
    body = json.dumps({"customer": customer, "invoices": list(specs)}).encode()
    request = urllib.request.Request(  # noqa: S310
        api_base.rstrip("/") + "/_invoices", data=body, method="POST"
    )
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.loads(response.read())["invoices"]
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        raise RuntimeError(f"creating invoices answered {exc.code}: {detail}") from None


def demo_year(
    today: dt.date,
    amounts: dict[str, int] | None = None,
    currency: str = "usd",
    since: dt.date | None = None,
) -> list[dict]:
    """Up to a year of monthly invoices up to last month (from `since`), as Petra issues them.

    Last month's is open and due in 30 days; the one of three months ago is still open, past
    its due date (overdue); one earlier month's first invoice was voided and issued again;
    the rest are paid. `amounts` gives a month's amount (``YYYY-MM``: minor units); other
    months get a plausible one.
    """
    amounts = amounts or {}
    month = today.replace(day=1)
    months = []
    for _ in range(12):
        month = (month - dt.timedelta(days=1)).replace(day=1)
        if since is not None and month < since.replace(day=1):
            break
        months.append(f"{month:%Y-%m}")
    months.reverse()
    last = len(months) - 1
    specs = []
    for index, period in enumerate(months):
        amount = amounts.get(period, 180_000 + 4_750 * index + (index % 3) * 1_325)
        status = "open" if index in (last, last - 2) else "paid"
        if index == last - 4:
            void = {"period": period, "amount": amount + 12_000, "status": "void"}
            specs.append(void | {"currency": currency})
        spec = {"period": period, "amount": amount, "currency": currency, "status": status}
        if index == last - 4:  # issued again two days after the voided one
            end = _next_month(dt.date.fromisoformat(f"{period}-01"))
            spec["created"] = (end + dt.timedelta(days=2)).isoformat()
        specs.append(spec)
    return specs


def main(argv: list[str] | None = None) -> None:
    """Give a customer of the local Stripe server a year of invoices."""
    parser = argparse.ArgumentParser(
        prog="python -m dev.stripe_local.invoices", description=main.__doc__
    )
    parser.add_argument("customer", help="the Stripe customer id (cus_…)")
    parser.add_argument("--api-base", default="http://127.0.0.1:8420")
    parser.add_argument("--today", type=dt.date.fromisoformat, default=dt.datetime.now(dt.UTC))
    args = parser.parse_args(argv)
    today = args.today.date() if isinstance(args.today, dt.datetime) else args.today
    try:
        created = create_invoices(args.api_base, args.customer, demo_year(today))
    except (OSError, RuntimeError) as exc:
        sys.exit(f"local Stripe server: {exc}")
    print(f"Created {len(created)} invoices for {args.customer}.")


if __name__ == "__main__":
    main()
