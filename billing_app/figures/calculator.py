"""The one calculator of usage: an organisation's tenants, identities, billable periods,
pauses and prices for one or more months, turned into per-user lines.

`user_lines` is the calculation; everything the app shows or sends is a projection of its
lines:

- `month_usage`: a month's lines grouped per tenant, with the tenants' and the month's sums
  (the report; with `tenant_id`, one tenant's page);
- `month_totals`: the same sums, from the lines counted by their billable days rather than
  built (`day_counts`; the Usage page's summary);
- `monthly_totals`: each month's total cost from January 2026, likewise (the chart);
- `load` with `user_lines`: the lines as they come, streamed (`users.csv`).

Both `user_lines` and `day_counts` take the billable days of each identity and month from
`_billable`, the one place the rules are applied; the rules themselves are in `proration`, the
loading in `queries`.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

from billing_app.figures import queries
from billing_app.figures.months import Month, available_months
from billing_app.figures.proration import (
    NoPriceError,
    PriceEntry,
    clipped,
    counted_window,
    identity_spans,
    overlaps,
    price_for,
    prorated_cost,
    prorated_units,
    tenant_spans,
)
from billing_app.figures.queries import IdentityRow, TenantRow
from billing_app.models import Organisation

_ZERO = Decimal(0)

# --- Results ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserLine:
    """One billable user of a month: an identity with at least one billable day."""

    identity_id: int
    external_id: str
    display_name: str
    user_principal_name: str
    billable_from: dt.date
    billable_to: dt.date
    """The last billable day within the month (inclusive)."""
    billable_days: int
    days_in_month: int
    units: Decimal
    unit_price: Decimal
    cost: Decimal
    tenant_id: int
    month: Month


_GETTERS: dict[type, operator.attrgetter] = {}


def _reduce(value: Any) -> tuple[type, tuple]:
    """Pickle a frozen dataclass as its class and its fields' values: kept figures are
    pickled by the thousand, and the dataclasses' own way (a Python loop over `fields()` per
    object) is the slowest part of keeping them."""
    kind = type(value)
    getter = _GETTERS.get(kind)
    if getter is None:
        getter = _GETTERS[kind] = operator.attrgetter(*(f.name for f in fields(kind)))
    return kind, getter(value)


@dataclass(frozen=True, slots=True)
class TenantTotals:
    """A tenant's figures in a month, as in `TenantUsage` but without its users."""

    __reduce__ = _reduce

    tenant_id: int
    external_id: str
    name: str
    onboarded_on: dt.date
    offboarded_on: dt.date | None
    onboarded_in_month: bool
    offboarded_in_month: bool
    paused_in_month: bool
    pauses_in_month: tuple[tuple[dt.date, dt.date | None], ...]
    """The tenant's pauses with a day in the month: (first day, day billing resumes or
    None), oldest first."""
    billable_users: int
    billable_days: int
    units: Decimal
    cost: Decimal

    @property
    def paused_days(self) -> tuple[tuple[dt.date, dt.date | None], ...]:
        """Each pause touching the month as (first paused day, last paused day or None)."""
        return tuple(
            (start, None if until is None else until - dt.timedelta(days=1))
            for start, until in self.pauses_in_month
        )


@dataclass(frozen=True, slots=True)
class MonthTotals:
    """An organisation's usage in a month per tenant, without per-user lines: what the month
    summary shows. Every figure equals the one `month_usage` gives for the same month and
    day; being small, it can be cached (see `figures.cache`)."""

    __reduce__ = _reduce

    organisation_id: int
    month: Month
    month_to_date: bool
    """The month is the current one: days after today are not counted yet."""
    counted_end: dt.date
    """The day after the last counted day (the month's end unless month to date)."""
    days_in_month: int
    unit_price: Decimal
    currency: str
    tenants: tuple[TenantTotals, ...]
    billable_users: int
    billable_days: int
    units: Decimal
    cost: Decimal

    @property
    def last_counted_day(self) -> dt.date:
        return self.counted_end - dt.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class TenantUsage(TenantTotals):
    """A tenant onboarded at some point in the month, with its billable users."""

    microsoft_tenant_id: str
    lines: tuple[UserLine, ...]


@dataclass(frozen=True, slots=True)
class MonthUsage(MonthTotals):
    """An organisation's usage in a month, counted on `today`, with every user's line."""

    organisation_slug: str
    organisation_name: str
    today: dt.date
    tenants: tuple[TenantUsage, ...]


# --- The calculation -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Window:
    """A priced month and the ordinals of its counted days, with its cost per billable-day
    count (costs[d], units[d])."""

    month: Month
    days: int
    lo: int
    hi: int
    unit_price: Decimal
    costs: tuple[Decimal, ...]
    units: tuple[Decimal, ...]


def _windows(months: Sequence[Month], prices: Sequence[PriceEntry], today: dt.date) -> list:
    windows = []
    for month in months:
        try:
            unit_price, _ = price_for(prices, month)
        except NoPriceError:
            continue
        start, end = counted_window(month, today)
        days = month.days
        windows.append(
            _Window(
                month,
                days,
                start.toordinal(),
                end.toordinal(),
                unit_price,
                tuple(prorated_cost(unit_price, d, days) for d in range(days + 1)),
                tuple(prorated_units(d, days) for d in range(days + 1)),
            )
        )
    return windows


def _billable(
    tenants: Iterable[TenantRow], identities: Iterable[IdentityRow], windows: Sequence[_Window]
) -> Iterator[tuple[IdentityRow, int, int, int, int]]:
    """The rule applied: for each identity in turn, each window (by its index) in which it has
    billable days (`proration.identity_spans`), as (identity, window index, first billable
    ordinal, ordinal after the last, billable days)."""
    if not windows:
        return
    lo, hi = windows[0].lo, windows[-1].hi
    spans_of = {
        t.id: tenant_spans(lo, hi, t.onboarded_on, t.offboarded_on, t.pauses) for t in tenants
    }
    single = len(windows) == 1
    bounds = [(window.lo, window.hi) for window in windows]
    for identity in identities:
        spans = identity_spans(identity.periods, spans_of.get(identity.tenant_id, []), lo, hi)
        if not spans:
            continue
        first, last = spans[0][0], spans[-1][1]
        if single:
            days = last - first if len(spans) == 1 else sum(b - a for a, b in spans)
            yield identity, 0, first, last, days
            continue
        for index, (window_lo, window_hi) in enumerate(bounds):
            if window_hi <= first:
                continue
            if window_lo >= last:
                break
            days, start, end = 0, 0, 0
            for a, b in spans:
                a, b = max(a, window_lo), min(b, window_hi)
                if a < b:
                    start = start or a
                    end = b
                    days += b - a
            if days:
                yield identity, index, start, end, days


def user_lines(
    tenants: Iterable[TenantRow],
    identities: Iterable[IdentityRow],
    prices: Sequence[PriceEntry],
    months: Sequence[Month],
    today: dt.date,
) -> Iterator[UserLine]:
    """The per-user lines of `months` (ascending), counted on `today`: for each identity in
    turn, one line for each month in which it has a billable day. A month without a price in
    `prices` (newest first) has no lines. Lines are yielded as they are computed."""
    windows = _windows(months, prices, today)
    day = {o: dt.date.fromordinal(o) for w in windows for o in range(w.lo, w.hi)}
    for identity, index, start, end, days in _billable(tenants, identities, windows):
        window = windows[index]
        yield UserLine(
            identity.id,
            identity.external_id,
            identity.display_name,
            identity.user_principal_name,
            day[start],
            day[end - 1],
            days,
            window.days,
            window.units[days],
            window.unit_price,
            window.costs[days],
            identity.tenant_id,
            window.month,
        )


def day_counts(
    tenants: Iterable[TenantRow],
    identities: Iterable[IdentityRow],
    prices: Sequence[PriceEntry],
    months: Sequence[Month],
    today: dt.date,
) -> dict[tuple[Month, int], list[int]]:
    """The lines of `user_lines` counted instead of built: for each month and tenant, how
    many users had d billable days (`counts[month, tenant id][d]`). A line's units and cost
    depend on its days alone, so sums over these counts equal sums over the lines."""
    windows = _windows(months, prices, today)
    per_window: list[dict[int, list[int]]] = [{} for _ in windows]
    for identity, index, _start, _end, days in _billable(tenants, identities, windows):
        histogram = per_window[index].get(identity.tenant_id)
        if histogram is None:
            histogram = per_window[index][identity.tenant_id] = [0] * (windows[index].days + 1)
        histogram[days] += 1
    return {
        (window.month, tenant_id): histogram
        for window, histograms in zip(windows, per_window, strict=True)
        for tenant_id, histogram in histograms.items()
    }


# --- Loading and projections -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Loaded:
    """What the calculator reads for a run of months: tenants, identities (streamed) and
    prices."""

    tenants: list[TenantRow]
    identities: Iterator[IdentityRow]
    prices: list[PriceEntry]


def load(
    organisation_id: int,
    months: Sequence[Month],
    today: dt.date,
    tenant_id: queries.Tenants = None,
    details: bool = True,
) -> Loaded:
    """The organisation's data touching `months` (ascending): three or four queries; without
    `details`, identities without their names."""
    first, last = months[0], months[-1]
    prices = queries.prices(organisation_id, last.end)
    tenants = queries.tenants(organisation_id, first.first_day, last.end, tenant_id)
    _, counted_end = counted_window(last, today)
    identities = (
        queries.identities(
            organisation_id, first.first_day, last.end, counted_end, tenant_id, details
        )
        if tenants
        else iter(())
    )
    return Loaded(tenants, identities, prices)


def _by_name(tenant_rows: Iterable[TenantRow]) -> list[TenantRow]:
    """Tenants in the order of the summary and the report's sheets."""
    return sorted(tenant_rows, key=lambda t: (t.name.casefold(), t.name, t.external_id))


def _line_order(line: UserLine) -> tuple:
    return (line.display_name.casefold(), line.user_principal_name.casefold(), line.external_id)


def _tenant_in_month(t: TenantRow, month: Month) -> dict[str, Any]:
    """A tenant's dates and what happened to it during the month (the badges)."""
    onboarded = clipped(
        [(t.onboarded_on, t.offboarded_on)], month.first_day.toordinal(), month.end.toordinal()
    )
    return {
        "tenant_id": t.id,
        "external_id": t.external_id,
        "name": t.name,
        "onboarded_on": t.onboarded_on,
        "offboarded_on": t.offboarded_on,
        "onboarded_in_month": month.first_day <= t.onboarded_on < month.end,
        "offboarded_in_month": (
            t.offboarded_on is not None and month.first_day < t.offboarded_on < month.end
        ),
        "paused_in_month": bool(onboarded) and overlaps(t.pauses, onboarded[0][0], onboarded[0][1]),
        "pauses_in_month": tuple(
            sorted(
                (start, until)
                for start, until in t.pauses
                if start < month.end and (until is None or until > month.first_day)
            )
        ),
    }


def _sums(users: int, days: int, cost: Decimal, days_in_month: int) -> dict[str, Any]:
    return {
        "billable_users": users,
        "billable_days": days,
        "units": prorated_units(days, days_in_month),
        "cost": cost,
    }


def _month_fields(
    month: Month, today: dt.date, unit_price: Decimal, currency: str, tenants: list
) -> dict[str, Any]:
    """What a month's usage and its totals share: the month, its price, and the sums of the
    tenants' figures (the cost being the sum of their rounded costs)."""
    return {
        "month": month,
        "month_to_date": month.first_day <= today < month.end,
        "counted_end": counted_window(month, today)[1],
        "days_in_month": month.days,
        "unit_price": unit_price,
        "currency": currency,
        "tenants": tuple(tenants),
        **_sums(
            sum(t.billable_users for t in tenants),
            sum(t.billable_days for t in tenants),
            sum((t.cost for t in tenants), _ZERO),
            month.days,
        ),
    }


def month_usage(
    organisation: Organisation, month: Month, today: dt.date, tenant_id: queries.Tenants = None
) -> MonthUsage:
    """The organisation's billable users, units and costs in `month`, counted on `today`
    (in the current month, days after today are not counted yet), with every user's line;
    with `tenant_id`, of that tenant only (or of those tenants, given a collection of ids:
    a large month can be read a few tenants at a time). Four queries."""
    data = load(organisation.id, [month], today, tenant_id)
    unit_price, currency = price_for(data.prices, month)
    lines_of: dict[int, list[UserLine]] = {t.id: [] for t in data.tenants}
    for line in user_lines(data.tenants, data.identities, data.prices, [month], today):
        lines_of[line.tenant_id].append(line)
    tenants = []
    for t in _by_name(data.tenants):
        tenant_lines = sorted(lines_of[t.id], key=_line_order)
        tenants.append(
            TenantUsage(
                **_tenant_in_month(t, month),
                **_sums(
                    len(tenant_lines),
                    sum(line.billable_days for line in tenant_lines),
                    sum((line.cost for line in tenant_lines), _ZERO),
                    month.days,
                ),
                microsoft_tenant_id=t.microsoft_tenant_id,
                lines=tuple(tenant_lines),
            )
        )
    return MonthUsage(
        organisation_id=organisation.id,
        organisation_slug=organisation.slug,
        organisation_name=organisation.name,
        today=today,
        **_month_fields(month, today, unit_price, currency, tenants),
    )


def month_totals(
    organisation: Organisation, month: Month, today: dt.date, tenant_id: queries.Tenants = None
) -> MonthTotals:
    """The figures of `month_usage` per tenant and in all, summed from the same lines counted
    by their billable days rather than built (with `tenant_id`, of those tenants only). Four
    queries."""
    return month_totals_on(organisation, month, [today], tenant_id)[today]


def month_totals_on(
    organisation: Organisation,
    month: Month,
    counted_on: Sequence[dt.date],
    tenant_id: queries.Tenants = None,
) -> dict[dt.date, MonthTotals]:
    """`month_totals` of `month` counted on each day of `counted_on` (e.g. today and the
    month's last day, which is its projection), from one read of the data: four queries."""
    data = load(organisation.id, [month], max(counted_on), tenant_id, details=False)
    unit_price, currency = price_for(data.prices, month)
    identities = list(data.identities) if len(counted_on) > 1 else data.identities
    costs = [prorated_cost(unit_price, d, month.days) for d in range(month.days + 1)]
    by_name = _by_name(data.tenants)
    totals = {}
    for today in counted_on:
        counts = day_counts(data.tenants, identities, data.prices, [month], today)
        tenants = []
        for t in by_name:
            histogram = counts.get((month, t.id), [0])
            tenants.append(
                TenantTotals(
                    **_tenant_in_month(t, month),
                    **_sums(
                        sum(histogram[1:]),
                        sum(days * users for days, users in enumerate(histogram)),
                        _cost(histogram, costs),
                        month.days,
                    ),
                )
            )
        totals[today] = MonthTotals(
            organisation_id=organisation.id,
            **_month_fields(month, today, unit_price, currency, tenants),
        )
    return totals


def assembled_totals(
    organisation_id: int,
    month: Month,
    today: dt.date,
    unit_price: Decimal,
    currency: str,
    tenants: Iterable[TenantTotals],
) -> MonthTotals:
    """A month's totals made of its tenants' totals (computed apart, e.g. kept per tenant),
    in the order and with the sums `month_totals` gives."""
    ordered = sorted(tenants, key=lambda t: (t.name.casefold(), t.name, t.external_id))
    return MonthTotals(
        organisation_id=organisation_id,
        **_month_fields(month, today, unit_price, currency, ordered),
    )


def _cost(histogram: list[int], costs: Sequence[Decimal]) -> Decimal:
    """The sum of the rounded costs of users counted by billable days."""
    return sum((costs[days] * users for days, users in enumerate(histogram) if users), _ZERO)


def monthly_totals(organisation: Organisation, today: dt.date) -> list[tuple[Month, Decimal]]:
    """The organisation's total prorated cost per month from January 2026 to the current
    month (month to date), oldest first; months before the first price are left out.
    Four queries in all, whatever the number of months."""
    months = available_months(today)[::-1]
    if not months:
        return []
    data = load(organisation.id, months, today, details=False)
    counts = day_counts(data.tenants, data.identities, data.prices, months, today)
    per_month = {month: [0] * (month.days + 1) for month in months if _priced(data.prices, month)}
    for (month, _tenant), histogram in counts.items():
        for days, users in enumerate(histogram):
            per_month[month][days] += users
    totals = []
    for month, histogram in per_month.items():
        unit_price, _ = price_for(data.prices, month)
        costs = [prorated_cost(unit_price, d, month.days) for d in range(month.days + 1)]
        totals.append((month, _cost(histogram, costs)))
    return totals


def _priced(prices: Sequence[PriceEntry], month: Month) -> bool:
    try:
        price_for(prices, month)
    except NoPriceError:
        return False
    return True
