"""Billable days, prorated units and prorated costs of an organisation's users, per month.

For a month M with D days, an identity's billable days are the days of M inside one of its
billable periods while its tenant was onboarded, not yet offboarded and not paused (in the
current month, only the days up to today). Prorated units = billable days / D; prorated cost =
unit price * billable days / D, rounded half-up to the cent per user. A tenant's cost is the
sum of its users' costs and the organisation's total the sum of its tenants'.

All date ranges are from-inclusive, until-exclusive; an until of None means still open.
Intervals are handled as half-open pairs of proleptic ordinals, never day by day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select

from .extensions import db
from .models import BillablePeriod, Identity, Organisation, Price, Tenant, TenantPause
from .months import FIRST_MONTH, Month

DateRange = tuple[dt.date, dt.date | None]
Span = tuple[int, int]

CENT = Decimal("0.01")
_CONTEXT = Context(prec=28, rounding=ROUND_HALF_EVEN)
_ZERO = Decimal(0)


class NoPriceError(LookupError):
    """The organisation's price list has no price in effect for the month."""


# --- Pure arithmetic -------------------------------------------------------------------------


def prorated_units(billable_days: int, days_in_month: int) -> Decimal:
    """Billable days / days in month, as a Decimal (28 significant digits)."""
    return _CONTEXT.divide(Decimal(billable_days), Decimal(days_in_month))


def prorated_cost(unit_price: Decimal, billable_days: int, days_in_month: int) -> Decimal:
    """Unit price * billable days / days in month, rounded half-up to the cent."""
    context = Context(prec=60)
    exact = context.divide(context.multiply(unit_price, billable_days), Decimal(days_in_month))
    return exact.quantize(CENT, rounding=ROUND_HALF_UP)


def counted_window(month: Month, today: dt.date) -> tuple[dt.date, dt.date]:
    """The days of `month` counted so far: from its first day up to, not including, the
    returned end (the month's end, or the day after today in the current month)."""
    end = min(month.end, today + dt.timedelta(days=1))
    return month.first_day, max(end, month.first_day)


def _clipped(ranges: Iterable[DateRange], lo: int, hi: int) -> list[Span]:
    """The ranges cut to [lo, hi), sorted and merged (touching spans join)."""
    spans: list[Span] = []
    for start, until in ranges:
        a = start.toordinal()
        b = hi if until is None else until.toordinal()
        a = max(a, lo)
        b = min(b, hi)
        if a < b:
            spans.append((a, b))
    if len(spans) < 2:
        return spans
    spans.sort()
    merged = [spans[0]]
    for a, b in spans[1:]:
        last_a, last_b = merged[-1]
        if a <= last_b:
            if b > last_b:
                merged[-1] = (last_a, b)
        else:
            merged.append((a, b))
    return merged


def _without(span: Span, holes: list[Span]) -> list[Span]:
    """One span minus sorted, merged holes."""
    a, b = span
    result: list[Span] = []
    for hole_a, hole_b in holes:
        if hole_b <= a:
            continue
        if hole_a >= b:
            break
        if hole_a > a:
            result.append((a, hole_a))
        a = max(a, hole_b)
        if a >= b:
            return result
    if a < b:
        result.append((a, b))
    return result


def _intersection(first: list[Span], second: list[Span]) -> list[Span]:
    """The intersection of two sorted lists of disjoint spans."""
    if len(first) == 1 and len(second) == 1:
        a = max(first[0][0], second[0][0])
        b = min(first[0][1], second[0][1])
        return [(a, b)] if a < b else []
    result: list[Span] = []
    i = j = 0
    while i < len(first) and j < len(second):
        a = max(first[i][0], second[j][0])
        b = min(first[i][1], second[j][1])
        if a < b:
            result.append((a, b))
        if first[i][1] < second[j][1]:
            i += 1
        else:
            j += 1
    return result


def _tenant_spans(
    lo: int,
    hi: int,
    onboarded_on: dt.date,
    offboarded_on: dt.date | None,
    pauses: Iterable[DateRange],
) -> list[Span]:
    """The days in [lo, hi) on which a tenant was onboarded, not offboarded and not paused."""
    onboarded = _clipped([(onboarded_on, offboarded_on)], lo, hi)
    if not onboarded:
        return []
    return _without(onboarded[0], _clipped(pauses, lo, hi))


@dataclass(frozen=True, slots=True)
class BillableDays:
    """An identity's billable days in a month, and the first and last of them."""

    days: int
    first: dt.date | None
    last: dt.date | None


def _summarise(spans: list[Span]) -> BillableDays:
    if not spans:
        return BillableDays(0, None, None)
    return BillableDays(
        sum(b - a for a, b in spans),
        dt.date.fromordinal(spans[0][0]),
        dt.date.fromordinal(spans[-1][1] - 1),
    )


def billable_days(
    periods: Iterable[DateRange],
    month: Month,
    *,
    onboarded_on: dt.date,
    offboarded_on: dt.date | None = None,
    pauses: Iterable[DateRange] = (),
    today: dt.date | None = None,
) -> BillableDays:
    """The billable days in `month` of an identity with these billable periods, in a tenant
    with this onboarding, offboarding and these pauses; with `today`, only days up to today
    count."""
    start, end = (month.first_day, month.end) if today is None else counted_window(month, today)
    lo, hi = start.toordinal(), end.toordinal()
    tenant = _tenant_spans(lo, hi, onboarded_on, offboarded_on, pauses)
    if not tenant:
        return BillableDays(0, None, None)
    identity = _clipped(periods, lo, hi)
    if not identity:
        return BillableDays(0, None, None)
    return _summarise(_intersection(identity, tenant))


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


@dataclass(frozen=True, slots=True)
class TenantTotals:
    """A tenant's figures in a month, as in `TenantUsage` but without its users."""

    tenant_id: int
    external_id: str
    name: str
    onboarded_on: dt.date
    offboarded_on: dt.date | None
    onboarded_in_month: bool
    offboarded_in_month: bool
    paused_in_month: bool
    billable_users: int
    billable_days: int
    units: Decimal
    cost: Decimal


@dataclass(frozen=True, slots=True)
class MonthTotals:
    """An organisation's usage in a month per tenant, without per-user lines: what the month
    summary shows. Every figure equals the one `month_usage` gives for the same month and
    day; being small, it can be cached (see `usage_summary`)."""

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


# --- Loading ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _TenantRow:
    id: int
    external_id: str
    name: str
    microsoft_tenant_id: str
    onboarded_on: dt.date
    offboarded_on: dt.date | None
    pauses: list[DateRange]


@dataclass(slots=True)
class _IdentityRow:
    id: int
    tenant_id: int
    external_id: str
    display_name: str
    user_principal_name: str
    periods: list[DateRange]


_BATCH = 2000


def _tenant_in(start: dt.date, end: dt.date) -> ColumnElement[bool]:
    """Tenants onboarded at some point in [start, end)."""
    return and_(
        Tenant.onboarded_on < end,
        or_(Tenant.offboarded_on.is_(None), Tenant.offboarded_on > start),
    )


def _load_tenants(
    organisation_id: int, start: dt.date, end: dt.date, only: Collection[int] | None = None
) -> list[_TenantRow]:
    """Tenants onboarded at some point in [start, end) (of the ids `only`, when given), with
    their pauses there: two queries."""
    chosen = () if only is None else (Tenant.id.in_(list(only)),)
    tenants = {
        row.id: _TenantRow(*row, pauses=[])
        for row in db.session.execute(
            select(
                Tenant.id,
                Tenant.external_id,
                Tenant.name,
                Tenant.microsoft_tenant_id,
                Tenant.onboarded_on,
                Tenant.offboarded_on,
            ).where(Tenant.organisation_id == organisation_id, _tenant_in(start, end), *chosen)
        )
    }
    if not tenants:
        return []
    pauses = db.session.execute(
        select(TenantPause.tenant_id, TenantPause.from_date, TenantPause.until_date)
        .join(Tenant, Tenant.id == TenantPause.tenant_id)
        .where(
            Tenant.organisation_id == organisation_id,
            _tenant_in(start, end),
            *chosen,
            TenantPause.from_date < end,
            or_(TenantPause.until_date.is_(None), TenantPause.until_date > start),
        )
    )
    for tenant_id, from_date, until_date in pauses:
        tenants[tenant_id].pauses.append((from_date, until_date))
    return list(tenants.values())


def _identity_filter(
    organisation_id: int,
    start: dt.date,
    end: dt.date,
    counted_end: dt.date,
    only: Collection[int] | None = None,
) -> tuple[ColumnElement[bool], ...]:
    """Billable periods overlapping [start, counted_end) of identities of the organisation's
    tenants onboarded at some point in [start, end) (of the ids `only`, when given; with
    BillablePeriod, Identity and Tenant joined)."""
    chosen = () if only is None else (Identity.tenant_id.in_(list(only)),)
    return (
        *chosen,
        Identity.organisation_id == organisation_id,
        Tenant.organisation_id == organisation_id,
        _tenant_in(start, end),
        BillablePeriod.from_date < counted_end,
        or_(BillablePeriod.until_date.is_(None), BillablePeriod.until_date > start),
    )


def _identities(
    organisation_id: int,
    start: dt.date,
    end: dt.date,
    counted_end: dt.date,
    only: Collection[int] | None = None,
) -> Iterator[_IdentityRow]:
    """The identities of tenants onboarded at some point in [start, end), each with its
    billable periods overlapping [start, counted_end): one query, streamed in batches."""
    rows = db.session.execute(
        select(
            Identity.id,
            Identity.tenant_id,
            Identity.external_id,
            Identity.display_name,
            Identity.user_principal_name,
            BillablePeriod.from_date,
            BillablePeriod.until_date,
        )
        .join(BillablePeriod, BillablePeriod.identity_id == Identity.id)
        .join(Tenant, Tenant.id == Identity.tenant_id)
        .where(*_identity_filter(organisation_id, start, end, counted_end, only))
        .order_by(Identity.id)
        .execution_options(yield_per=_BATCH)
    )
    identity: _IdentityRow | None = None
    for identity_id, tenant_id, external_id, name, upn, from_date, until_date in rows:
        if identity is None or identity.id != identity_id:
            if identity is not None:
                yield identity
            identity = _IdentityRow(identity_id, tenant_id, external_id, name, upn, [])
        identity.periods.append((from_date, until_date))
    if identity is not None:
        yield identity


def _identity_periods(
    organisation_id: int, start: dt.date, end: dt.date, counted_end: dt.date
) -> Iterator[tuple[int, list[DateRange]]]:
    """As `_identities`, but only each identity's tenant and billable periods, as
    (tenant id, periods): all that totals need, and a lighter query and loop."""
    rows = db.session.execute(
        select(Identity.id, Identity.tenant_id, BillablePeriod.from_date, BillablePeriod.until_date)
        .join(BillablePeriod, BillablePeriod.identity_id == Identity.id)
        .join(Tenant, Tenant.id == Identity.tenant_id)
        .where(*_identity_filter(organisation_id, start, end, counted_end))
        .order_by(Identity.id)
        .execution_options(yield_per=_BATCH)
    )
    current: int | None = None
    tenant = 0
    periods: list[DateRange] = []
    for identity_id, tenant_id, from_date, until_date in rows:
        if identity_id != current:
            if current is not None:
                yield tenant, periods
            current, tenant, periods = identity_id, tenant_id, []
        periods.append((from_date, until_date))
    if current is not None:
        yield tenant, periods


def _prices(organisation_id: int, before: dt.date) -> list[tuple[dt.date, Decimal, str]]:
    """The price list entries from before `before`, newest first."""
    return [
        tuple(row)
        for row in db.session.execute(
            select(Price.from_month, Price.unit_price, Price.currency)
            .where(Price.organisation_id == organisation_id, Price.from_month < before)
            .order_by(Price.from_month.desc())
        )
    ]


def _price_for(prices: Sequence[tuple[dt.date, Decimal, str]], month: Month) -> tuple[Decimal, str]:
    for from_month, unit_price, currency in prices:
        if from_month < month.end:
            return Decimal(unit_price), currency
    raise NoPriceError(f"The price list has no unit price for {month.label} or earlier.")


# --- Computing -------------------------------------------------------------------------------


def _overlaps(ranges: Iterable[DateRange], lo: int, hi: int) -> bool:
    """Whether any of the ranges has a day in [lo, hi)."""
    return bool(_clipped(ranges, lo, hi))


def _by_name(tenant_rows: Iterable[_TenantRow]) -> list[_TenantRow]:
    """Tenants in the order of the summary and the report's sheets."""
    return sorted(tenant_rows, key=lambda t: (t.name.casefold(), t.name, t.external_id))


def _tenant_in_month(t: _TenantRow, month: Month) -> dict[str, Any]:
    """A tenant's dates and what happened to it during the month (the badges)."""
    onboarded = _clipped(
        [(t.onboarded_on, t.offboarded_on)], month.first_day.toordinal(), month.end.toordinal()
    )
    return {
        "onboarded_on": t.onboarded_on,
        "offboarded_on": t.offboarded_on,
        "onboarded_in_month": month.first_day <= t.onboarded_on < month.end,
        "offboarded_in_month": (
            t.offboarded_on is not None and month.first_day < t.offboarded_on < month.end
        ),
        "paused_in_month": bool(onboarded)
        and _overlaps(t.pauses, onboarded[0][0], onboarded[0][1]),
    }


def month_usage(
    organisation: Organisation,
    month: Month,
    today: dt.date,
    tenant_ids: Collection[int] | None = None,
) -> MonthUsage:
    """The organisation's billable users, units and costs in `month`, counted on `today`
    (in the current month, days after today are not counted yet). Four queries. With
    `tenant_ids`, only those tenants and their users, so that a large month can be read a
    few tenants at a time."""
    prices = _prices(organisation.id, month.end)
    unit_price, currency = _price_for(prices, month)
    start, counted_end = counted_window(month, today)
    tenant_rows = _load_tenants(organisation.id, month.first_day, month.end, tenant_ids)
    identity_rows = (
        _identities(organisation.id, month.first_day, month.end, counted_end, tenant_ids)
        if tenant_rows
        else iter(())
    )

    days_in_month = month.days
    lo, hi = start.toordinal(), counted_end.toordinal()
    costs = {d: prorated_cost(unit_price, d, days_in_month) for d in range(1, days_in_month + 1)}
    units = {d: prorated_units(d, days_in_month) for d in range(1, days_in_month + 1)}

    spans_by_tenant = {
        t.id: _tenant_spans(lo, hi, t.onboarded_on, t.offboarded_on, t.pauses) for t in tenant_rows
    }
    lines_by_tenant: dict[int, list[UserLine]] = {t.id: [] for t in tenant_rows}
    day_of = {ordinal: dt.date.fromordinal(ordinal) for ordinal in range(lo, hi)}
    for identity in identity_rows:
        tenant_spans = spans_by_tenant[identity.tenant_id]
        if not tenant_spans:
            continue
        spans = _clipped(identity.periods, lo, hi)
        if not spans:
            continue
        spans = _intersection(spans, tenant_spans)
        if not spans:
            continue
        days = sum(b - a for a, b in spans) if len(spans) > 1 else spans[0][1] - spans[0][0]
        lines_by_tenant[identity.tenant_id].append(
            UserLine(
                identity.id,
                identity.external_id,
                identity.display_name,
                identity.user_principal_name,
                day_of[spans[0][0]],
                day_of[spans[-1][1] - 1],
                days,
                days_in_month,
                units[days],
                unit_price,
                costs[days],
            )
        )

    tenants: list[TenantUsage] = []
    for t in _by_name(tenant_rows):
        lines = lines_by_tenant[t.id]
        lines.sort(
            key=lambda line: (
                line.display_name.casefold(),
                line.user_principal_name.casefold(),
                line.external_id,
            )
        )
        tenant_days = sum(line.billable_days for line in lines)
        tenants.append(
            TenantUsage(
                tenant_id=t.id,
                external_id=t.external_id,
                name=t.name,
                microsoft_tenant_id=t.microsoft_tenant_id,
                **_tenant_in_month(t, month),
                lines=tuple(lines),
                billable_users=len(lines),
                billable_days=tenant_days,
                units=prorated_units(tenant_days, days_in_month),
                cost=sum((line.cost for line in lines), _ZERO),
            )
        )

    return MonthUsage(
        organisation_id=organisation.id,
        organisation_slug=organisation.slug,
        organisation_name=organisation.name,
        today=today,
        **_month_fields(month, today, counted_end, unit_price, currency, tenants),
    )


def month_totals(organisation: Organisation, month: Month, today: dt.date) -> MonthTotals:
    """The figures of `month_usage` per tenant and in all, without the per-user lines, and
    computed without building them: users are counted per tenant by their number of
    billable days, which is all the costs depend on. Four queries."""
    prices = _prices(organisation.id, month.end)
    unit_price, currency = _price_for(prices, month)
    start, counted_end = counted_window(month, today)
    tenant_rows = _load_tenants(organisation.id, month.first_day, month.end)

    days_in_month = month.days
    lo, hi = start.toordinal(), counted_end.toordinal()
    spans_by_tenant = {
        t.id: _tenant_spans(lo, hi, t.onboarded_on, t.offboarded_on, t.pauses) for t in tenant_rows
    }
    # How many of a tenant's users had d billable days: histograms[tenant id][d].
    histograms = {t.id: [0] * (days_in_month + 1) for t in tenant_rows}
    if any(spans_by_tenant.values()):
        for tenant_id, periods in _identity_periods(
            organisation.id, month.first_day, month.end, counted_end
        ):
            tenant_spans = spans_by_tenant[tenant_id]
            if not tenant_spans:
                continue
            spans = _clipped(periods, lo, hi)
            if not spans:
                continue
            spans = _intersection(spans, tenant_spans)
            if spans:
                histograms[tenant_id][sum(b - a for a, b in spans)] += 1

    costs = [prorated_cost(unit_price, d, days_in_month) for d in range(days_in_month + 1)]
    tenants: list[TenantTotals] = []
    for t in _by_name(tenant_rows):
        histogram = histograms[t.id]
        tenant_days = sum(days * users for days, users in enumerate(histogram))
        tenants.append(
            TenantTotals(
                tenant_id=t.id,
                external_id=t.external_id,
                name=t.name,
                **_tenant_in_month(t, month),
                billable_users=sum(histogram[1:]),
                billable_days=tenant_days,
                units=prorated_units(tenant_days, days_in_month),
                cost=sum(
                    (costs[days] * users for days, users in enumerate(histogram) if users),
                    _ZERO,
                ),
            )
        )

    return MonthTotals(
        organisation_id=organisation.id,
        **_month_fields(month, today, counted_end, unit_price, currency, tenants),
    )


def _month_fields(
    month: Month,
    today: dt.date,
    counted_end: dt.date,
    unit_price: Decimal,
    currency: str,
    tenants: list,
) -> dict[str, Any]:
    """What a month's usage and its totals share: the month, its price, and the sums of the
    tenants' figures (the cost being the sum of their rounded costs)."""
    total_days = sum(t.billable_days for t in tenants)
    return {
        "month": month,
        "month_to_date": month.first_day <= today < month.end,
        "counted_end": counted_end,
        "days_in_month": month.days,
        "unit_price": unit_price,
        "currency": currency,
        "tenants": tuple(tenants),
        "billable_users": sum(t.billable_users for t in tenants),
        "billable_days": total_days,
        "units": prorated_units(total_days, month.days),
        "cost": sum((t.cost for t in tenants), _ZERO),
    }


def monthly_totals(organisation: Organisation, today: dt.date) -> list[tuple[Month, Decimal]]:
    """The organisation's total prorated cost per month from January 2026 to the current
    month (month to date), oldest first; months before the first price are left out.
    Four queries in all, whatever the number of months."""
    current = Month.of(today)
    if current < FIRST_MONTH:
        return []
    months: list[Month] = []
    month = FIRST_MONTH
    while month <= current:
        months.append(month)
        month = month.next()
    start = FIRST_MONTH.first_day
    _, counted_end = counted_window(current, today)
    prices = _prices(organisation.id, current.end)
    tenant_rows = _load_tenants(organisation.id, start, current.end)
    identity_rows = (
        _identity_periods(organisation.id, start, current.end, counted_end)
        if tenant_rows
        else iter(())
    )

    lo, hi = start.toordinal(), counted_end.toordinal()
    bounds = [(m.first_day.toordinal(), m.end.toordinal()) for m in months]
    # How many users had d billable days in month i: counts[i][d].
    counts = [[0] * (m.days + 1) for m in months]
    spans_by_tenant = {
        t.id: _tenant_spans(lo, hi, t.onboarded_on, t.offboarded_on, t.pauses) for t in tenant_rows
    }
    for tenant_id, periods in identity_rows:
        tenant_spans = spans_by_tenant[tenant_id]
        if not tenant_spans:
            continue
        spans = _intersection(_clipped(periods, lo, hi), tenant_spans)
        days_per_month: dict[int, int] = {}
        for a, b in spans:
            for i, (month_lo, month_hi) in enumerate(bounds):
                if month_hi <= a:
                    continue
                if month_lo >= b:
                    break
                days_per_month[i] = days_per_month.get(i, 0) + min(b, month_hi) - max(a, month_lo)
        for i, days in days_per_month.items():
            counts[i][days] += 1

    totals: list[tuple[Month, Decimal]] = []
    for month, histogram in zip(months, counts, strict=True):
        try:
            unit_price, _ = _price_for(prices, month)
        except NoPriceError:
            continue
        total = sum(
            (
                prorated_cost(unit_price, days, month.days) * users
                for days, users in enumerate(histogram)
                if users
            ),
            _ZERO,
        )
        totals.append((month, total))
    return totals
