"""The Usage page's figures as it shows them: the month picker's months, the chosen month's
headline and summary and the chart (`chart`), or why the month cannot be shown."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from billing_app.figures.cache import chart_totals, month_headline, month_summary
from billing_app.figures.calculator import MonthTotals
from billing_app.figures.headline import Headline
from billing_app.figures.months import (
    Month,
    MonthNotAvailable,
    available_months,
    parse_requested_month,
)
from billing_app.figures.proration import NoPriceError
from billing_app.models import Organisation
from billing_app.usage.chart import Chart, chart_of


@dataclass(frozen=True, slots=True)
class MonthSummary:
    """What the month summary shows: the chosen month's usage, or why it cannot be shown."""

    months: list[Month]
    month: Month
    usage: MonthTotals | None = None
    headline: Headline | None = None
    chart: Chart | None = None
    """None when every month is zero."""
    problem: str | None = None
    status: int = 200
    key: tuple | None = None
    """What the figures depend on (organisation, its usage revision, month, today), for
    keeping the rendered summary; None for a summary that shows a problem."""

    @property
    def current(self) -> Month:
        return self.months[0]


def summary_of(organisation: Organisation, value: str | None, today: dt.date) -> MonthSummary:
    """The summary of the month asked for as `YYYY-MM` (None: the current month)."""
    months = available_months(today)
    try:
        month = months[0] if value is None else parse_requested_month(value, today)
    except MonthNotAvailable as bad:
        return MonthSummary(months, months[0], problem=str(bad), status=400)
    try:
        usage = month_summary(organisation, month, today)
    except NoPriceError:
        return MonthSummary(months, month, problem=no_price(month))
    headline = month_headline(organisation, month, today)
    # The current month's bar shows its projection whichever month is chosen.
    current = months[0]
    projected = (
        headline.projected_cost if month == current else projection(organisation, current, today)
    )
    chart = chart_of(chart_totals(organisation, today), month, current, projected)
    key = (organisation.id, organisation.usage_revision, str(month), today.isoformat())
    return MonthSummary(months, month, usage, headline, chart, key=key)


def projection(organisation: Organisation, current: Month, today: dt.date) -> Decimal | None:
    """The current month's projected month-end cost; None when it has no price."""
    try:
        return month_headline(organisation, current, today).projected_cost
    except NoPriceError:
        return None


def no_price(month: Month) -> str:
    return (
        f"There is no unit price for {month.label} in your organisation's price list, so its "
        "usage cannot be priced yet. Contact Petra support to have the price added."
    )
