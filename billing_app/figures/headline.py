"""The headline of a month: what it costs, for how many users, at what price, how that
compares with the month before, and for the current month what the whole month will cost.

Every figure is a month's totals from the one calculator (`calculator.month_totals`, or the
same through `figures.cache`, passed in as `totals`); nothing here counts days itself.

The projected month-end cost is the month counted through its last day from the data
recorded today, at the month's own price: the calculator run with "today" set to the month's
last day. So an open billable period runs to the month's end; a pause or an offboarding
already recorded for later in the month stops it there, by the same proration rules; a period
that ended earlier in the month stays at its days; and a price from next month does not apply.
It is an estimate: users added, removed or paused from now on change it.

For the current month the change against the month before compares that projection with the
month before (month to date against a whole month would only say how far the month has got);
for a past month it compares the two months' costs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from billing_app.figures.calculator import MonthTotals
from billing_app.figures.month_request import month_before
from billing_app.figures.months import FIRST_MONTH, Month
from billing_app.figures.proration import NoPriceError
from billing_app.models import Organisation

Totals = Callable[[Organisation, Month, dt.date], MonthTotals]
"""A month's totals counted on a day: `calculator.month_totals` or `cache.month_summary`."""

PERCENT = Decimal("0.1")
CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Change:
    """A month's cost (or its projection) against the month before."""

    previous_month: Month
    previous_cost: Decimal
    amount: Decimal
    """This month's cost (projected, for the current month) minus the month before's."""
    percent: Decimal | None
    """The amount as a percentage of the month before's cost, half-up to 0.1; None when the
    month before cost nothing (there is no percentage of zero)."""
    projected: bool
    """The change is of the projected month-end cost (the current month)."""
    unit_price: Decimal
    """The month's unit price."""
    previous_unit_price: Decimal
    """The month before's unit price."""

    @property
    def price_changed(self) -> bool:
        return self.unit_price != self.previous_unit_price

    @property
    def price_rose(self) -> bool:
        return self.unit_price > self.previous_unit_price

    @property
    def from_price(self) -> Decimal:
        """Of `amount`, what the new price accounts for: this month's (projected) usage at the
        difference of the two prices, half-up to the cent; zero when the price is the same."""
        if not self.price_changed or not self.unit_price:
            return Decimal("0.00")
        cost = self.previous_cost + self.amount
        share = cost * (self.unit_price - self.previous_unit_price) / self.unit_price
        return share.quantize(CENT, rounding=ROUND_HALF_UP)

    @property
    def from_usage(self) -> Decimal:
        """Of `amount`, what more or fewer billable user-days account for."""
        return self.amount - self.from_price


@dataclass(frozen=True, slots=True)
class Headline:
    """The figures at the top of the Usage page for one month."""

    month: Month
    month_to_date: bool
    last_counted_day: dt.date
    currency: str
    cost: Decimal
    """The month's cost; month to date for the current month."""
    billable_users: int
    unit_price: Decimal
    projected_cost: Decimal | None
    """The current month's projected month-end cost (an estimate); None for a past month."""
    change: Change | None
    """None for January 2026 (no month before) or when the month before has no price."""

    @property
    def first_month(self) -> bool:
        """The month is January 2026: there is no month before to compare with."""
        return self.month == FIRST_MONTH


def headline(organisation: Organisation, month: Month, today: dt.date, totals: Totals) -> Headline:
    """The headline of `month` counted on `today`, from `totals` (which raises
    `NoPriceError` when the month has no price)."""
    shown = totals(organisation, month, today)
    projected = None
    if shown.month_to_date:
        last_day = month.end - dt.timedelta(days=1)
        projected = totals(organisation, month, last_day).cost
    previous = None
    if (before := month_before(month)) is not None:
        try:
            previous = totals(organisation, before, today)
        except NoPriceError:
            previous = None
    return headline_of(shown, projected, previous)


def headline_of(
    shown: MonthTotals, projected_cost: Decimal | None, previous: MonthTotals | None
) -> Headline:
    """The headline of a month's totals, given its projection (current month only) and the
    totals of the month before (None when there is none)."""
    change = None
    if previous is not None and shown.month > FIRST_MONTH:
        compared = shown.cost if projected_cost is None else projected_cost
        change = change_of(
            compared, previous, projected=projected_cost is not None, unit_price=shown.unit_price
        )
    return Headline(
        month=shown.month,
        month_to_date=shown.month_to_date,
        last_counted_day=shown.last_counted_day,
        currency=shown.currency,
        cost=shown.cost,
        billable_users=shown.billable_users,
        unit_price=shown.unit_price,
        projected_cost=projected_cost,
        change=change,
    )


def change_of(
    cost: Decimal,
    previous: MonthTotals,
    *,
    projected: bool = False,
    unit_price: Decimal | None = None,
) -> Change:
    """`cost` against the month before's totals; `unit_price` is this month's (by default the
    month before's)."""
    amount = cost - previous.cost
    percent = None
    if previous.cost:
        percent = (amount * 100 / previous.cost).quantize(PERCENT, rounding=ROUND_HALF_UP)
    price = previous.unit_price if unit_price is None else unit_price
    return Change(
        previous.month, previous.cost, amount, percent, projected, price, previous.unit_price
    )
