"""Calendar months: the unit Petra bills by, and which of them a report may be asked for."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass

from billing_app.formats import shortened

_MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_MONTH_PATTERN = re.compile(r"([0-9]{4})-([0-9]{2})")


@dataclass(frozen=True, order=True, slots=True)
class Month:
    """A calendar month; its days run from `first_day` up to, not including, `end`."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12:
            raise ValueError(f"month must be 1 to 12, not {self.month}")
        if not 1 <= self.year <= 9998:
            raise ValueError(f"year must be 1 to 9998, not {self.year}")

    @classmethod
    def parse(cls, value: str) -> Month:
        """The month written exactly as `YYYY-MM`; `ValueError` for anything else."""
        match = _MONTH_PATTERN.fullmatch(value)
        if match is None:
            raise ValueError(f"not a month in the form YYYY-MM: {value!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of(cls, day: dt.date) -> Month:
        """The month a day falls in."""
        return cls(day.year, day.month)

    @property
    def first_day(self) -> dt.date:
        return dt.date(self.year, self.month, 1)

    @property
    def end(self) -> dt.date:
        """The first day of the next month (the month's exclusive end)."""
        return self.next().first_day

    @property
    def days(self) -> int:
        """How many days the month has."""
        return calendar.monthrange(self.year, self.month)[1]

    @property
    def label(self) -> str:
        """The month for people, e.g. "November 2026"."""
        return f"{_MONTH_NAMES[self.month - 1]} {self.year}"

    def previous(self) -> Month:
        if self.month == 1:
            return Month(self.year - 1, 12)
        return Month(self.year, self.month - 1)

    def next(self) -> Month:
        if self.month == 12:
            return Month(self.year + 1, 1)
        return Month(self.year, self.month + 1)

    def __contains__(self, day: object) -> bool:
        return isinstance(day, dt.date) and (day.year, day.month) == (self.year, self.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


FIRST_MONTH = Month(2026, 1)
"""The first month usage is available for."""


class MonthNotAvailable(ValueError):
    """A requested month that is malformed, or outside January 2026 to the current month."""


def today_utc() -> dt.date:
    """Today's date in UTC, the calendar billing days are counted in."""
    return dt.datetime.now(dt.UTC).date()


def available_months(today: dt.date) -> list[Month]:
    """The months a report may be asked for, newest first: the current month back to
    January 2026."""
    months: list[Month] = []
    month = Month.of(today)
    while month >= FIRST_MONTH:
        months.append(month)
        month = month.previous()
    return months


def parse_requested_month(value: str | None, today: dt.date) -> Month:
    """The month asked for as `YYYY-MM`, checked against the available months."""
    if not value:
        raise MonthNotAvailable("Choose a month, written as YYYY-MM (for example 2026-03).")
    try:
        month = Month.parse(value)
    except ValueError:
        shown = shortened(value)
        raise MonthNotAvailable(
            f"“{shown}” is not a month. Write it as YYYY-MM, for example 2026-03."
        ) from None
    if month < FIRST_MONTH:
        raise MonthNotAvailable(
            f"Usage is available from {FIRST_MONTH.label}; {month.label} is earlier."
        )
    current = Month.of(today)
    if month > current:
        raise MonthNotAvailable(
            f"{month.label} has not started yet; the latest month is {current.label}."
        )
    return month
