"""One month asked for: the request's `month` value (with the organisation and today) made
into the month, its price and the month before it has a price, or a refusal saying why.

Every caller that shows a month's figures (the Usage page and its summary, the tenant page,
the report, the CSV exports, and anything after them such as a JSON API or mail) asks here,
so the rules "a malformed or unavailable month is refused with 400" and "a month without a
price cannot be shown" are written once. Plain Python: the refusal carries its HTTP status,
a title and a message a person understands, for any caller to render as it likes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from billing_app.figures.months import (
    FIRST_MONTH,
    Month,
    MonthNotAvailable,
    available_months,
    parse_requested_month,
)
from billing_app.figures.proration import NoPriceError, PriceEntry, price_for
from billing_app.figures.queries import prices
from billing_app.models import Organisation

NOT_AVAILABLE = 400
"""A month that is malformed, missing where one is required, or outside the months shown."""
NO_PRICE = 409
"""A month the organisation's price list has no price for."""


@dataclass(frozen=True, slots=True)
class MonthRequest:
    """A month that can be shown: its price, and the month before to compare with."""

    months: tuple[Month, ...]
    """The months that may be asked for, newest first (the month picker's)."""
    month: Month
    unit_price: Decimal
    currency: str
    previous: Month | None
    """The month before, when there is one with a price (none for January 2026)."""

    @property
    def current(self) -> Month:
        return self.months[0]


@dataclass(frozen=True, slots=True)
class MonthRefusal:
    """Why the month asked for cannot be shown."""

    months: tuple[Month, ...]
    month: Month
    """The month shown with the refusal: the one asked for, else the current month."""
    status: int
    """`NOT_AVAILABLE` (400) or `NO_PRICE` (409)."""
    title: str
    message: str

    @property
    def current(self) -> Month:
        return self.months[0]

    @property
    def no_price(self) -> bool:
        return self.status == NO_PRICE


def no_price_message(month: Month) -> str:
    """Why a month without a price shows no figures, for people."""
    return (
        f"There is no unit price for {month.label} in your organisation's price list, so its "
        "usage cannot be priced yet. Contact Petra support to have the price added."
    )


def month_request(
    organisation: Organisation,
    value: str | None,
    today: dt.date,
    *,
    current_if_missing: bool = False,
    what: str = "usage",
) -> MonthRequest | MonthRefusal:
    """The month asked for as `YYYY-MM`. Without a value: the current month when
    `current_if_missing`, else a refusal. `what` names what is asked for in a refusal's title
    ("No report for that month"). One query (the price list) for a month that parses."""
    months = tuple(available_months(today))
    try:
        if value is None and current_if_missing:
            month = months[0]
        else:
            month = parse_requested_month(value, today)
    except MonthNotAvailable as bad:
        return MonthRefusal(months, months[0], NOT_AVAILABLE, f"No {what} for that month", str(bad))
    entries = prices(organisation.id, month.end)
    try:
        unit_price, currency = price_for(entries, month)
    except NoPriceError:
        return MonthRefusal(
            months, month, NO_PRICE, "No price for that month", no_price_message(month)
        )
    return MonthRequest(months, month, unit_price, currency, priced_month_before(month, entries))


def month_before(month: Month) -> Month | None:
    """The month before, when there is one to compare with (none before January 2026)."""
    before = month.previous()
    return before if before >= FIRST_MONTH else None


def priced_month_before(month: Month, entries: list[PriceEntry]) -> Month | None:
    """The month before when it has a price in `entries` (the price list, newest first)."""
    before = month_before(month)
    if before is None:
        return None
    try:
        price_for(entries, before)
    except NoPriceError:
        return None
    return before
