"""The Usage page's figures as it shows them: the month picker's months, the chosen month's
headline and summary and the chart (`chart`), or why the month cannot be shown."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from billing_app.figures.cache import chart_totals, month_headline, month_summary
from billing_app.figures.calculator import MonthTotals
from billing_app.figures.headline import Headline
from billing_app.figures.month_request import MonthRefusal, month_request
from billing_app.figures.months import Month
from billing_app.figures.proration import NoPriceError
from billing_app.models import Organisation
from billing_app.usage.chart import Chart, chart_of


@dataclass(frozen=True, slots=True)
class MonthSummary:
    """What the month summary shows: the chosen month's usage, or why it cannot be shown."""

    months: tuple[Month, ...]
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


def refused(refusal: MonthRefusal) -> MonthSummary:
    """The summary that says why the month cannot be shown: 400 for a month that cannot be
    asked for; a month without a price is shown, with the problem, as the page it is (200)."""
    status = 200 if refusal.no_price else refusal.status
    return MonthSummary(refusal.months, refusal.month, problem=refusal.message, status=status)


def summary_of(organisation: Organisation, value: str | None, today: dt.date) -> MonthSummary:
    """The summary of the month asked for as `YYYY-MM` (None: the current month)."""
    asked = month_request(organisation, value, today, current_if_missing=True)
    if isinstance(asked, MonthRefusal):
        return refused(asked)
    month, current = asked.month, asked.current
    usage = month_summary(organisation, month, today)
    headline = month_headline(organisation, month, today)
    # The current month's bar shows its projection whichever month is chosen.
    projected = (
        headline.projected_cost if month == current else projection(organisation, current, today)
    )
    chart = chart_of(chart_totals(organisation, today), month, current, projected)
    key = (organisation.id, organisation.usage_revision, str(month), today.isoformat())
    return MonthSummary(asked.months, month, usage, headline, chart, key=key)


def projection(organisation: Organisation, current: Month, today: dt.date) -> Decimal | None:
    """The current month's projected month-end cost; None when it has no price."""
    try:
        return month_headline(organisation, current, today).projected_cost
    except NoPriceError:
        return None
