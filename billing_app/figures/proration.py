"""Billable days, prorated units and prorated costs of an organisation's users, per month.

For a month M with D days, an identity's billable days are the days of M inside one of its
billable periods while its tenant was onboarded, not yet offboarded and not paused (in the
current month, only the days up to today). Prorated units = billable days / D; prorated cost =
unit price * billable days / D, rounded half-up to the cent per user. A tenant's cost is the
sum of its users' costs and the organisation's total the sum of its tenants'.

All date ranges are from-inclusive, until-exclusive; an until of None means still open.
Intervals are handled as half-open pairs of proleptic ordinals, never day by day.

These are the rules only; `calculator` applies them to an organisation's data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal

from billing_app.figures.months import Month

DateRange = tuple[dt.date, dt.date | None]
Span = tuple[int, int]
PriceEntry = tuple[dt.date, Decimal, str]
"""A price list entry: first day of its `from_month`, unit price, currency."""

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


def clipped(ranges: Iterable[DateRange], lo: int, hi: int) -> list[Span]:
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


def intersection(first: list[Span], second: list[Span]) -> list[Span]:
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


def tenant_spans(
    lo: int,
    hi: int,
    onboarded_on: dt.date,
    offboarded_on: dt.date | None,
    pauses: Iterable[DateRange],
) -> list[Span]:
    """The days in [lo, hi) on which a tenant was onboarded, not offboarded and not paused."""
    onboarded = clipped([(onboarded_on, offboarded_on)], lo, hi)
    if not onboarded:
        return []
    return _without(onboarded[0], clipped(pauses, lo, hi))


@dataclass(frozen=True, slots=True)
class BillableDays:
    """An identity's billable days in a month, and the first and last of them."""

    days: int
    first: dt.date | None
    last: dt.date | None


def identity_spans(
    periods: Iterable[DateRange], tenant: list[Span], lo: int, hi: int
) -> list[Span]:
    """The billable days in [lo, hi) of an identity with these billable periods, in a tenant
    that was onboarded, not offboarded and not paused on the days `tenant` (`tenant_spans`)."""
    if not tenant:
        return []
    spans = clipped(periods, lo, hi)
    if not spans:
        return []
    return intersection(spans, tenant)


def overlaps(ranges: Iterable[DateRange], lo: int, hi: int) -> bool:
    """Whether any of the ranges has a day in [lo, hi)."""
    return bool(clipped(ranges, lo, hi))


def price_for(prices: Sequence[PriceEntry], month: Month) -> tuple[Decimal, str]:
    """The unit price and currency of `month`: the entry whose `from_month` is the latest one
    not after it (`prices` newest first)."""
    for from_month, unit_price, currency in prices:
        if from_month < month.end:
            return Decimal(unit_price), currency
    raise NoPriceError(f"The price list has no unit price for {month.label} or earlier.")
