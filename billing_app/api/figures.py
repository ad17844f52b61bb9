"""What the API reads of the app's figures, in one module: the month asked for, the months'
totals and projections, the rows of `tenants.csv` and `users.csv` (made by the same code as
the CSV exports, with text as stored), the invoices the page shows, and what an ETag is made
of. Every other module of the API goes through here, so a change in the figures' internals
touches this file only. Nothing here knows about Flask.

Lists are in a stable order by the import file's ids, which a sync never changes: tenants by
`tenant_id`, users by `tenant_id` then `identity_id`, months newest first, invoices newest
first. Each page starts after the key of the previous page's last row, so a sync landing
between two pages neither repeats nor skips a row that was there before it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from billing_app.exports import csv
from billing_app.extensions import db
from billing_app.figures import cache
from billing_app.figures.calculator import MonthTotals, TenantTotals
from billing_app.figures.month_request import (
    MonthRefusal,
    MonthRequest,
    month_request,
    no_price_message,
)
from billing_app.figures.months import (
    Month,
    MonthNotAvailable,
    available_months,
    parse_requested_month,
)
from billing_app.figures.proration import NoPriceError
from billing_app.figures.revisions import month_revision
from billing_app.invoices import service as invoices
from billing_app.models import Organisation
from billing_app.stripe_gateway import StripeGateway
from billing_app.tenants import service as tenants

__all__ = [
    "MonthNotAvailable",
    "MonthRefusal",
    "NoPriceError",
    "Page",
    "etag",
    "find_tenant",
    "invoice_rows",
    "month_revision",
    "month_rows",
    "no_price_message",
    "parse_month",
    "requested_month",
    "tenant_rows",
    "user_rows",
]

ETAG_VERSION = "1"
"""Part of every ETag: bump it when what a resource answers changes shape."""


@dataclass(frozen=True, slots=True)
class Page:
    """Rows of a list, whether more follow, and the key of the last row (for the cursor)."""

    rows: list[dict[str, Any]]
    has_more: bool
    last_key: list[str] | None


def organisation(organisation_id: int) -> Organisation:
    """The organisation a token acts for."""
    return db.session.get(Organisation, organisation_id)


def parse_month(value: str, today: dt.date) -> Month:
    """The month of the path, checked as the page checks it (`MonthNotAvailable`); no query,
    so that an ETag can be answered before anything is read."""
    return parse_requested_month(value, today)


def requested_month(org: Organisation, value: str, today: dt.date) -> MonthRequest | MonthRefusal:
    """The month of the path with its price, or why it has no figures: the one month request
    every page and export uses."""
    return month_request(org, value, today)


def find_tenant(organisation_id: int, external_id: str) -> int | None:
    """The row id of the organisation's tenant with this import id (None: no such tenant)."""
    tenant = tenants.find(organisation_id, external_id)
    return tenant.id if tenant is not None else None


def etag(
    organisation_id: int,
    usage_revision: int,
    resource: str,
    month: Month | None,
    today: dt.date,
    params: Iterable[tuple[str, str]],
    scopes: Iterable[str],
) -> str:
    """The ETag of a usage resource, from what its figures depend on, never the figures
    themselves: the organisation and its usage revision, the resource, the month (with today
    for a month not yet over, or any month for lists of months), the query and the token's
    scopes. Answering If-None-Match costs nothing more than reading these."""
    day = today.isoformat() if month is None or today < month.end else "closed"
    parts = [
        ETAG_VERSION,
        str(organisation_id),
        str(usage_revision),
        resource,
        str(month) if month else "-",
        day,
        "&".join(f"{k}={v}" for k, v in sorted(params)),
        " ".join(sorted(scopes)),
    ]
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:40]


def _after(key: Sequence[str], after: Sequence[str] | None) -> bool:
    return after is None or tuple(key) > tuple(after)


def _null_if_empty(value: Any) -> Any:
    return None if value == "" else value


# --- Months ------------------------------------------------------------------------------


def month_rows(org: Organisation, today: dt.date, after: Sequence[str] | None, limit: int) -> Page:
    """Every available month with a price, newest first, from the cached month totals; the
    current month with its projection by the headline's rule."""
    rows: list[dict[str, Any]] = []
    months = [m for m in available_months(today) if after is None or str(m) < after[0]]
    for month in months:
        try:
            totals = cache.month_summary(org, month, today)
        except NoPriceError:
            continue
        if len(rows) == limit:
            return Page(rows, True, [rows[-1]["month"]])
        projected = None
        if totals.month_to_date:
            projected = cache.month_headline(org, month, today).projected_cost
        units = sum((Decimal(csv.units(t.units)) for t in totals.tenants), Decimal(0))
        rows.append(
            {
                "month": str(month),
                "billable_users": totals.billable_users,
                "prorated_units": csv.units(units),
                "unit_price": csv.price(totals.unit_price),
                "currency": totals.currency.upper(),
                "prorated_cost": csv.money(totals.cost),
                "month_to_date": totals.month_to_date,
                "projected_cost": csv.money(projected) if projected is not None else None,
            }
        )
    return Page(rows, False, None)


# --- Tenants -----------------------------------------------------------------------------


def _month_totals(org: Organisation, month: Month, today: dt.date) -> MonthTotals:
    return cache.month_summary(org, month, today)


def tenant_rows(
    org: Organisation, month: Month, today: dt.date, after: Sequence[str] | None, limit: int
) -> Page:
    """The rows of `tenants.csv` for the month (`NoPriceError` without a price), by
    `tenant_id`, after the key `after`: `limit` of them."""
    totals = _month_totals(org, month, today)
    ordered = sorted(totals.tenants, key=lambda t: t.external_id)
    chosen = [t for t in ordered if _after([t.external_id], after)][: limit + 1]
    has_more = len(chosen) > limit
    chosen = chosen[:limit]
    rows = _tenant_dicts(org, month, today, totals, chosen)
    return Page(rows, has_more, [rows[-1]["tenant_id"]] if has_more else None)


def _tenant_dicts(
    org: Organisation,
    month: Month,
    today: dt.date,
    totals: MonthTotals,
    chosen: list[TenantTotals],
) -> list[dict[str, Any]]:
    if not chosen:
        return []
    page_totals = dataclasses.replace(totals, tenants=tuple(chosen))
    previous = cache.previous_totals(org, month, today)
    microsoft_ids = cache.microsoft_tenant_ids(org)
    return [
        {name: _null_if_empty(value) for name, value in zip(csv.TENANT_COLUMNS, row, strict=True)}
        for row in csv.tenant_rows(page_totals, previous, microsoft_ids, text=csv.as_stored)
    ]


# --- Users -------------------------------------------------------------------------------


def user_rows(
    org: Organisation,
    month: Month,
    today: dt.date,
    tenant_id: int | None,
    after: Sequence[str] | None,
    limit: int,
) -> Page:
    """The rows of `users.csv` for the month (or one tenant, by its row id), by `tenant_id`
    then `identity_id`, after the key `after`: `limit` of them. Only the tenants the page
    needs are computed, chosen by their billable users in the (cached) month totals."""
    totals = _month_totals(org, month, today)
    ordered = sorted(
        (t for t in totals.tenants if tenant_id is None or t.tenant_id == tenant_id),
        key=lambda t: t.external_id,
    )
    if after is not None:
        ordered = [t for t in ordered if t.external_id >= after[0]]
    rows: list[dict[str, Any]] = []
    start = 0
    while start < len(ordered) and len(rows) <= limit:
        # Enough tenants for the rest of the page and one row more, by their user counts.
        wanted, end = limit + 1 - len(rows), start
        while end < len(ordered) and wanted > 0:
            wanted -= ordered[end].billable_users
            end += 1
        batch = ordered[start:end]
        start = end
        found = [
            dict(zip(csv.USER_COLUMNS, row, strict=True))
            for row in csv.user_rows(
                org, month, today, [t.tenant_id for t in batch], text=csv.as_stored
            )
        ]
        found.sort(key=lambda r: (r["tenant_id"], r["identity_id"]))
        rows.extend(r for r in found if _after((r["tenant_id"], r["identity_id"]), after))
    has_more = len(rows) > limit
    rows = rows[:limit]
    last = [rows[-1]["tenant_id"], rows[-1]["identity_id"]] if has_more else None
    return Page(rows, has_more, last)


# --- Invoices ----------------------------------------------------------------------------


def invoice_rows(
    org: Organisation,
    stripe: StripeGateway,
    today: dt.date,
    after: Sequence[str] | None,
    limit: int,
) -> Page | invoices.InvoicesProblem:
    """The invoices the page shows, newest first, in the page's states (or why Stripe could
    not be asked)."""
    shown = invoices.latest_invoices(org, stripe=stripe, today=today)
    if shown.problem is not None:
        return shown.problem
    rows = []
    for row in shown.rows:
        key = [row.issued_on.isoformat(), row.id]
        if after is not None and (key[0], key[1]) >= (after[0], after[1]):
            continue
        rows.append(
            (
                key,
                {
                    "id": row.id,
                    "number": row.number,
                    "period_start": row.period_first.isoformat(),
                    "period_end": row.period_last.isoformat(),
                    "amount": str(row.amount),
                    "currency": row.currency.upper(),
                    "status": row.state.value,
                    "due_date": row.due_on.isoformat() if row.due_on else None,
                },
            )
        )
    rows.sort(key=lambda pair: (pair[0][0], pair[0][1]), reverse=True)
    has_more = len(rows) > limit
    rows = rows[:limit]
    return Page([r for _, r in rows], has_more, rows[-1][0] if has_more else None)
