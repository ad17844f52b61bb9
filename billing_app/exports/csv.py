"""The CSV exports of a month, for rebilling in a PSA: one row per tenant (`tenants.csv`) and
one row per billable user (`users.csv`), in the column names DESIGN.md fixes.

Written with the standard library's `csv` module (RFC 4180 quoting, CRLF line ends), UTF-8,
dates as YYYY-MM-DD, money as plain decimals, prorated units with four decimals. Customer text
goes through `neutralised`, so that no spreadsheet runs it as a formula. Rows are produced one
at a time from the calculator's streamed lines and written in chunks (`chunks`): a month of
100,000 users never sits whole in memory. `exports.views` streams them as attachments.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import ROUND_HALF_UP, Decimal

from billing_app.figures import calculator
from billing_app.figures.cache import microsoft_tenant_ids, month_summary
from billing_app.figures.calculator import MonthTotals
from billing_app.figures.comparison import MonthBefore
from billing_app.figures.month_request import MonthRequest
from billing_app.figures.months import Month
from billing_app.figures.proration import price_for
from billing_app.figures.queries import Tenants
from billing_app.models import Organisation

TENANT_COLUMNS = (
    "month",
    "tenant_id",
    "tenant_name",
    "microsoft_tenant_id",
    "billable_users",
    "prorated_units",
    "unit_price",
    "currency",
    "prorated_cost",
    "previous_billable_users",
    "previous_prorated_cost",
)
USER_COLUMNS = (
    "month",
    "tenant_id",
    "tenant_name",
    "microsoft_tenant_id",
    "identity_id",
    "display_name",
    "user_principal_name",
    "billable_from",
    "billable_to",
    "billable_days",
    "days_in_month",
    "prorated_units",
    "unit_price",
    "currency",
    "prorated_cost",
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What a spreadsheet may take as the start of a formula (OWASP, "CSV Injection")."""
CHUNK = 64 * 1024
"""Characters written out at a time."""

_FORMULA_FIRST = frozenset(FORMULA_STARTS)
_CENT = Decimal("0.01")
_UNITS = Decimal("0.0001")


def neutralised(text: str) -> str:
    """Customer text as a spreadsheet will show it rather than run it: text starting with
    `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`. Only text columns pass
    through here; numbers are written as numbers and never prefixed."""
    if text[:1] in _FORMULA_FIRST:
        return "'" + text
    return text


def money(amount: Decimal) -> str:
    """A cost as a plain decimal to the cent: `1.49`, `0.00`."""
    return str(amount.quantize(_CENT, rounding=ROUND_HALF_UP))


def price(amount: Decimal) -> str:
    """A unit price as a plain decimal, at least to the cent and no further than it is set:
    `3.00`, `2.975`."""
    exponent = amount.normalize().as_tuple().exponent
    places = max(2, -exponent) if isinstance(exponent, int) else 2
    return f"{amount:.{places}f}"


def units(value: Decimal) -> str:
    """Prorated units with four decimals, rounded half up: `0.4839`."""
    return str(value.quantize(_UNITS, rounding=ROUND_HALF_UP))


def day(value: dt.date) -> str:
    return value.isoformat()


def filename(organisation: Organisation, month: Month, kind: str) -> str:
    """`usage-<slug>-YYYY-MM-tenants.csv` or `usage-<slug>-YYYY-MM-users.csv`."""
    return f"usage-{organisation.slug}-{month}-{kind}.csv"


def chunks(header: Sequence[str], rows: Iterable[Sequence[object]]) -> Iterator[str]:
    """The header and the rows written as CSV, yielded in pieces of about `CHUNK` characters."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow(row)
        if buffer.tell() >= CHUNK:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


# --- What goes in the rows ---------------------------------------------------------------


def as_stored(text: str) -> str:
    """Customer text as it is stored, for answers that are not spreadsheets (the API)."""
    return text


def tenant_rows(
    month_totals: MonthTotals,
    previous: MonthTotals | None,
    microsoft_ids: dict[int, str],
    text: Callable[[str], str] = neutralised,
) -> Iterator[list[str | int]]:
    """One row per tenant onboarded at some point in the month (zeros when it had no billable
    user), with its figures the month before (empty when that month cannot be shown: before
    January 2026, or without a price). Customer text goes through `text` (`neutralised` for
    the CSV, `as_stored` for the API)."""
    before = MonthBefore(previous)
    for tenant in month_totals.tenants:
        earlier = before.of(tenant.tenant_id)
        previous_users: str | int = "" if earlier is None else earlier[0]
        previous_cost = "" if earlier is None else money(earlier[1])
        yield [
            str(month_totals.month),
            text(tenant.external_id),
            text(tenant.name),
            text(microsoft_ids.get(tenant.tenant_id, "")),
            tenant.billable_users,
            units(tenant.units),
            price(month_totals.unit_price),
            month_totals.currency.upper(),
            money(tenant.cost),
            previous_users,
            previous_cost,
        ]


def month_tenant_rows(
    organisation: Organisation, asked: MonthRequest, today: dt.date
) -> Iterator[list[str | int]]:
    """The rows of a month's `tenants.csv`: its cached totals beside the month before's, as
    the export and the monthly statement's attachment write them."""
    totals = month_summary(organisation, asked.month, today)
    previous = month_summary(organisation, asked.previous, today) if asked.previous else None
    return tenant_rows(totals, previous, microsoft_tenant_ids(organisation))


def user_rows(
    organisation: Organisation,
    month: Month,
    today: dt.date,
    tenant_id: Tenants = None,
    text: Callable[[str], str] = neutralised,
) -> Iterator[list[str | int]]:
    """One row per billable user of the month (or of one tenant, or of some: a collection of
    tenant ids), streamed from the calculator in the order the identities were imported.
    `NoPriceError` when the month has no unit price, raised before the first row. Customer
    text goes through `text`, as in `tenant_rows`."""
    data = calculator.load(organisation.id, [month], today, tenant_id)
    _, currency = price_for(data.prices, month)
    return _user_rows(data, month, today, currency.upper(), text)


def _user_rows(
    data: calculator.Loaded,
    month: Month,
    today: dt.date,
    currency: str,
    text: Callable[[str], str] = neutralised,
) -> Iterator[list[str | int]]:
    # A line's units and cost depend on its billable days alone, its dates are days of the
    # month and its tenant is one of a few: each is written once and looked up after.
    tenants = {
        t.id: [text(t.external_id), text(t.name), text(t.microsoft_tenant_id)] for t in data.tenants
    }
    month_text = str(month)
    days: dict[dt.date, str] = {}
    by_days: dict[int, tuple[str, str, str]] = {}
    for line in calculator.user_lines(data.tenants, data.identities, data.prices, [month], today):
        figures = by_days.get(line.billable_days)
        if figures is None:
            figures = by_days[line.billable_days] = (
                units(line.units),
                price(line.unit_price),
                money(line.cost),
            )
        first = days.get(line.billable_from) or days.setdefault(
            line.billable_from, day(line.billable_from)
        )
        last = days.get(line.billable_to) or days.setdefault(
            line.billable_to, day(line.billable_to)
        )
        yield [
            month_text,
            *tenants[line.tenant_id],
            text(line.external_id),
            text(line.display_name),
            text(line.user_principal_name),
            first,
            last,
            line.billable_days,
            line.days_in_month,
            figures[0],
            figures[1],
            currency,
            figures[2],
        ]
