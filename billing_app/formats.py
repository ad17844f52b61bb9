"""Dates and times as every page writes them: "2 December 2026", "2 December 2026, 19:46 UTC"."""

from __future__ import annotations

import datetime as dt


def format_day(day: dt.date) -> str:
    """A day for people: "2 December 2026"."""
    return f"{day.day} {day:%B %Y}"


def format_moment(moment: dt.datetime) -> str:
    """A moment in UTC for people: "2 December 2026, 19:46 UTC" (a naive one is taken as UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return f"{format_day(moment.date())}, {moment:%H:%M} UTC"
