"""The chart of monthly totals: round ticks on a money axis, bars that link to their months
with their values in their names, and the current month's projection drawn above it."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest
from sqlalchemy import select

from billing_app.extensions import db
from billing_app.figures.calculator import monthly_totals
from billing_app.figures.months import FIRST_MONTH, Month, available_months, today_utc
from billing_app.formats import format_money
from billing_app.models import Organisation
from billing_app.usage.chart import (
    PLOT_BOTTOM,
    PLOT_TOP,
    axis_ticks,
    chart_of,
    round_step,
)
from billing_app.usage.service import projection
from tests.factories import ALWAYS, add_tenant
from tests.pages import rows, summary_region

SUMMARY = "/settings/usage/summary"
HTMX = {"HX-Request": "true"}
ARRIVAL = "#usage-month-heading"
"""Where a bar leads in its month's page: the month's heading, which takes the focus."""


def is_round(step: Decimal) -> bool:
    """1, 2 or 5 times a power of ten."""
    digits = step.normalize().as_tuple().digits
    return digits in ((1,), (2,), (5,))


# --- Ticks -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("highest", "step", "top"),
    [
        ("1234.56", "500", "1500"),
        ("1000", "200", "1000"),
        ("1000.01", "500", "1500"),
        ("2471.62", "500", "2500"),
        ("9.99", "2", "10"),
        ("0.37", "0.1", "0.4"),
        ("0.01", "0.01", "0.01"),
        ("48", "10", "50"),
        ("51", "20", "60"),
        ("1234567.89", "500000", "1500000"),
    ],
)
def test_ticks_are_round_steps_from_zero_to_the_highest_bar_or_above(highest, step, top):
    highest = Decimal(highest)
    ticks = axis_ticks(highest)
    assert round_step(highest) == Decimal(step)
    assert ticks[0] == 0 and ticks[-1] == Decimal(top) >= highest
    assert all(b - a == Decimal(step) for a, b in itertools.pairwise(ticks))
    assert 2 <= len(ticks) <= 6


@pytest.mark.parametrize("cents", [1, 7, 99, 100, 101, 333, 4999, 5001, 123456, 98765432])
def test_the_step_is_the_smallest_round_one_that_fits_in_five(cents):
    highest = Decimal(cents) / 100
    step = round_step(highest)
    assert is_round(step)
    assert step * 5 >= highest
    # The round step just below: 1 -> 0.5, 2 -> 1, 5 -> 2 (times the power of ten).
    first_digit = step.normalize().as_tuple().digits[0]
    smaller = step / 2 if first_digit in (1, 2) else step * 2 / 5
    assert is_round(smaller)
    assert smaller < Decimal("0.01") or smaller * 5 < highest


def test_a_step_needs_a_positive_amount():
    with pytest.raises(ValueError):
        round_step(Decimal(0))


# --- Layout ----------------------------------------------------------------------------------

DECEMBER = Month(2026, 12)


def months_to(last: Month) -> list[Month]:
    months, month = [], FIRST_MONTH
    while month <= last:
        months.append(month)
        month = month.next()
    return months


def totals(*amounts: str) -> list[tuple[Month, Decimal]]:
    return list(zip(months_to(Month(2026, len(amounts))), map(Decimal, amounts), strict=True))


def test_bars_are_scaled_to_the_axis_top():
    chart = chart_of(totals("100", "250", "0", "180"), Month(2026, 2), Month(2026, 4))
    assert chart.top == Decimal(250)
    heights = [bar.height for bar in chart.bars]
    plot = PLOT_BOTTOM - PLOT_TOP
    assert heights == [round(plot * 100 / 250), plot, 0, round(plot * 180 / 250)]
    assert [tick.y for tick in chart.ticks] == [
        PLOT_BOTTOM - round(plot * v / 250) for v in range(0, 251, 50)
    ]
    assert [bar.selected for bar in chart.bars] == [False, True, False, False]
    assert chart.highest.month == Month(2026, 2)


def test_projection_segment_only_on_the_current_month():
    chart = chart_of(totals("100", "40"), Month(2026, 1), Month(2026, 2), Decimal("310"))
    past, current = chart.bars
    assert chart.top == Decimal(400)  # the projection is the highest
    assert past.projected is None and past.projection_height == 0
    assert current.current and current.projected == Decimal(310)
    assert current.projection_y == PLOT_BOTTOM - round((PLOT_BOTTOM - PLOT_TOP) * 310 / 400)
    assert current.projection_y + current.projection_height == current.y
    assert chart.highest == current


def test_no_chart_when_every_month_is_zero():
    assert chart_of(totals("0", "0", "0"), Month(2026, 1), Month(2026, 3)) is None
    assert chart_of([], Month(2026, 1), Month(2026, 1)) is None


def test_narrow_screens_label_every_third_month_and_the_chosen_one():
    chart = chart_of(totals(*["10"] * 12), Month(2026, 8), DECEMBER)
    labelled = [bar.month.month for bar in chart.bars if not bar.minor]
    # Every third month from January, and August (chosen), but not July, right beside it.
    assert labelled == [1, 4, 8, 10]
    wide = chart_of(totals(*["10"] * 5), Month(2026, 1), Month(2026, 5))
    assert not any(bar.minor for bar in wide.bars)


def test_positions_are_percentages_of_the_plot_within_it():
    chart = chart_of(totals(*["10"] * 12), DECEMBER, DECEMBER)
    for bar in chart.bars:
        assert 0 <= bar.slot_x <= bar.x < bar.x + bar.width <= bar.slot_x + bar.slot_width <= 100
    assert chart.bars[-1].slot_x + chart.bars[-1].slot_width == 100


# --- On the page -----------------------------------------------------------------------------


@pytest.fixture
def usage(app, organisation) -> Organisation:
    with app.app_context():
        org = db.session.scalar(select(Organisation).filter_by(slug="northwind-msp"))
        add_tenant(org, "Contoso Ltd", users=(("Grace", ALWAYS), ("Alan", ALWAYS)))
        add_tenant(org, "Fabrikam", onboarded_on="2026-03-01", users=(("Ada", ALWAYS),))
        db.session.expunge_all()
    return organisation


def figures(app, today: dt.date):
    with app.app_context():
        org = db.session.scalar(select(Organisation).filter_by(slug="northwind-msp"))
        return monthly_totals(org, today), projection(org, Month.of(today), today)


def test_each_bar_links_to_its_month_with_its_value_in_its_name(app, auth, usage):
    today = today_utc()
    current = Month.of(today)
    month_totals, projected = figures(app, today)
    auth.as_role("full_member")
    region = summary_region(
        auth.client.get(SUMMARY, query_string={"month": "2026-03"}, headers=HTMX)
    )
    svg = region.by_id("usage-chart").one("svg")
    assert svg.attrs["role"] == "group"
    assert svg.by_id(svg.attrs["aria-labelledby"]).tag == "title"
    links = svg.all("a")
    assert len(links) == len(month_totals) == len(available_months(today))
    for link, (month, total) in zip(links, month_totals, strict=True):
        assert link.attrs["href"] == f"/settings/usage?month={month}{ARRIVAL}"
        name = f"{month.label}: {format_money(total, 'usd')}"
        if month == current:
            name += f" so far, {format_money(projected, 'usd')} projected for the month"
        assert link.attrs["aria-label"] == name
    selected = [link for link in links if link.attrs.get("aria-current") == "true"]
    assert [link.attrs["href"] for link in selected] == [f"/settings/usage?month=2026-03{ARRIVAL}"]
    assert "is-selected" in selected[0].one("rect", class_="chart-bar is-selected").classes


def test_projection_is_drawn_on_the_current_month_only_with_a_legend(app, auth, usage):
    today = today_utc()
    auth.as_role("admin")
    region = summary_region(
        auth.client.get(SUMMARY, query_string={"month": "2026-01"}, headers=HTMX)
    )
    chart = region.by_id("usage-chart")
    segments = [rect for rect in chart.all("rect") if "chart-projection" in rect.classes]
    links = [a for a in chart.all("a") if a.all("rect", class_="chart-projection")]
    if today.day < Month.of(today).days:
        assert len(segments) == 1 and int(segments[0].attrs["height"]) > 0
        assert [a.attrs["href"] for a in links] == [
            f"/settings/usage?month={Month.of(today)}{ARRIVAL}"
        ]
        assert "Projected to month end (estimate)" in chart.by_id("chart-legend-projection").text
    else:  # on the month's last day the projection is the month to date: no segment
        assert segments == []


def test_ticks_and_the_text_alternative_use_the_money_format(app, auth, usage):
    today = today_utc()
    month_totals, projected = figures(app, today)
    auth.as_role("admin")
    region = summary_region(
        auth.client.get(SUMMARY, query_string={"month": "2026-01"}, headers=HTMX)
    )
    chart = region.by_id("usage-chart")
    ticks = [text.text for text in chart.all("text") if "chart-tick" in text.classes]
    highest = max([total for _, total in month_totals] + [projected])
    assert ticks == [format_money(v, "usd", whole=True) for v in axis_ticks(highest)]
    assert ticks[0] == "$0"
    alternative = chart.by_id("usage-chart-data")
    assert "visually-hidden" in alternative.classes
    current = Month.of(today)
    assert rows(alternative, "tbody") == [
        [
            month.label + (" (month to date)" if month == current else ""),
            format_money(total, "usd"),
            f"{format_money(projected, 'usd')} (estimate)" if month == current else "—",
        ]
        for month, total in month_totals
    ]


def test_no_chart_for_an_organisation_without_usage(auth, organisation):
    auth.as_role("admin")
    region = summary_region(
        auth.client.get(SUMMARY, query_string={"month": "2026-01"}, headers=HTMX)
    )
    assert region.by_id("usage-chart") is None
    assert region.all("svg") == []
