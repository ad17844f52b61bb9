"""Figures as people read them, and the one place every template filter comes from: money
("$1,234.56"), days ("2 Dec 2026"), moments ("2 Dec 2026, 19:46 UTC"), and text cut
short for a message. Plain Python; `register_filters` hands them to the app's templates."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal


def format_day(day: dt.date) -> str:
    """A day for people, the one way every page writes it: "2 Dec 2026"."""
    return f"{day.day} {day:%b %Y}"


def format_moment(moment: dt.datetime) -> str:
    """A moment in UTC for people: "2 Dec 2026, 19:46 UTC" (a naive one is taken as UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return f"{format_day(moment.date())}, {moment:%H:%M} UTC"


CURRENCY_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}
"""Currencies written with a symbol before the amount; any other is written by its code
after it ("1,234.56 CHF"). The report's cell formats use the same symbols."""
SHORTENED = 20
"""Characters of typed text a message quotes before cutting it short."""


def format_money(amount: Decimal, currency: str, whole: bool = False) -> str:
    """An amount with its currency: "$1,234.56", "€1,234.56", "£1,234.56", "1,234.56 CHF";
    with `whole`, a whole amount without its cents ("$1,500", as on the chart's axis)."""
    exponent = amount.normalize().as_tuple().exponent
    places = max(2, -exponent) if isinstance(exponent, int) else 2
    if whole and amount == amount.to_integral_value():
        places = 0
    number = f"{abs(amount):,.{places}f}"
    sign = "-" if amount < 0 else ""
    symbol = CURRENCY_SYMBOLS.get(currency.lower())
    if symbol:
        return f"{sign}{symbol}{number}"
    return f"{sign}{number} {currency.upper()}"


def shortened(text: str, length: int = SHORTENED) -> str:
    """Typed text as a message quotes it: at most `length` characters, then "…"."""
    return text if len(text) <= length else text[:length] + "…"


def register_filters(app) -> None:
    """Every template filter, from this module alone: `money`, `day` and `moment`."""
    app.jinja_env.filters["money"] = format_money
    app.jinja_env.filters["day"] = format_day
    app.jinja_env.filters["moment"] = format_moment
