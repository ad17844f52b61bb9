"""The Usage page's chart of monthly totals: one bar per month, a money axis with round ticks,
and for the current month its cost so far with the projected month-end cost above it.

Everything is laid out here, from Decimal amounts, so the template only writes the numbers:
heights and tick positions are whole pixels (the chart is `HEIGHT` pixels tall at any width),
horizontal positions are percentages of the plot's width (it fills its card), with three
decimals. Labels keep their size in pixels; on a narrow screen only some months are
labelled (`ChartBar.minor`), so the labels never shrink or collide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

from billing_app.figures.months import Month

HEIGHT = 236
"""The chart's height in pixels: plot, then a row of month labels and a row of years."""
PLOT_TOP = 14
PLOT_BOTTOM = 196
MONTH_LABEL_Y = 214
YEAR_LABEL_Y = 230
MIN_SLOTS = 6
"""A chart of fewer months still spaces its bars as if it had this many, so one month is
not one bar as wide as the page."""
BAR_SHARE = Decimal("0.62")
"""A bar's width as a share of its month's slot."""
MAX_TICKS = 5
"""At most this many steps from zero to the axis's top."""
STEPS = (Decimal(1), Decimal(2), Decimal(5))
MIN_EXPONENT = -2
"""No step below a cent."""
_PERCENT = Decimal("0.001")


@dataclass(frozen=True, slots=True)
class Tick:
    """A line across the plot at a round amount."""

    value: Decimal
    y: int


@dataclass(frozen=True, slots=True)
class ChartBar:
    """One month: its cost (month to date for the current month) and, for the current month,
    the projected month-end cost drawn above it."""

    month: Month
    total: Decimal
    projected: Decimal | None
    x: Decimal
    """Left edge, as a percentage of the plot's width."""
    width: Decimal
    centre: Decimal
    slot_x: Decimal
    """Left edge of the month's whole slot (where a pointer selects the month)."""
    slot_width: Decimal
    y: int
    height: int
    projection_y: int
    projection_height: int
    """The segment from the cost so far up to the projection (0 when there is none)."""
    selected: bool
    current: bool
    minor: bool
    """Its label is left out on a narrow screen (only every few months are labelled)."""
    show_year: bool

    @property
    def short_label(self) -> str:
        return self.month.label[:3]


@dataclass(frozen=True, slots=True)
class Chart:
    """The bars, the axis's ticks and the axis's top (at least the highest bar)."""

    bars: tuple[ChartBar, ...]
    ticks: tuple[Tick, ...]
    top: Decimal
    highest: ChartBar

    height: int = HEIGHT
    plot_top: int = PLOT_TOP
    plot_bottom: int = PLOT_BOTTOM
    month_label_y: int = MONTH_LABEL_Y
    year_label_y: int = YEAR_LABEL_Y

    @property
    def current(self) -> ChartBar | None:
        """The current month's bar, the one with a projection."""
        return next((bar for bar in self.bars if bar.current), None)


def round_step(highest: Decimal, max_ticks: int = MAX_TICKS) -> Decimal:
    """The smallest step of 1, 2 or 5 times a power of ten that reaches `highest` (> 0) in at
    most `max_ticks` steps from zero."""
    if highest <= 0:
        raise ValueError("the highest amount must be positive")
    exponent = max((highest / max_ticks).adjusted(), MIN_EXPONENT)
    while True:
        for base in STEPS:
            step = base.scaleb(exponent)
            if steps_to(highest, step) <= max_ticks:
                return step
        exponent += 1


def steps_to(amount: Decimal, step: Decimal) -> int:
    """How many `step`s from zero reach `amount` (rounded up)."""
    return int((amount / step).to_integral_value(rounding=ROUND_CEILING))


def axis_ticks(highest: Decimal) -> list[Decimal]:
    """Round amounts from zero to the first one at or above `highest`: 0, s, 2s, … with s
    from `round_step`."""
    step = round_step(highest)
    return [step * n for n in range(steps_to(highest, step) + 1)]


def chart_of(
    totals: Sequence[tuple[Month, Decimal]],
    selected: Month,
    current: Month,
    projected: Decimal | None = None,
) -> Chart | None:
    """The chart of `totals` (oldest first), with `selected` marked and, for `current`, the
    cost so far topped by `projected`; None when every month is zero (nothing to draw)."""
    if not totals:
        return None
    amounts = [total for _, total in totals]
    if projected is not None and any(month == current for month, _ in totals):
        amounts.append(projected)
    highest = max(amounts)
    if highest <= 0:
        return None
    values = axis_ticks(highest)
    top = values[-1]
    ticks = tuple(Tick(value, _y(value, top)) for value in values)

    slot = Decimal(100) / max(len(totals), MIN_SLOTS)
    width = slot * BAR_SHARE
    every = _label_every(len(totals))
    chosen = next((i for i, (month, _) in enumerate(totals) if month == selected), None)
    bars = []
    for index, (month, total) in enumerate(totals):
        is_current = month == current
        projection = projected if is_current else None
        y = _y(total, top)
        top_y = _y(max(projection, total), top) if projection is not None else y
        x = slot * index + (slot - width) / 2
        bars.append(
            ChartBar(
                month=month,
                total=total,
                projected=projection,
                x=_percent(x),
                width=_percent(width),
                centre=_percent(slot * index + slot / 2),
                slot_x=_percent(slot * index),
                slot_width=_percent(slot),
                y=y,
                height=PLOT_BOTTOM - y,
                projection_y=top_y,
                projection_height=y - top_y,
                selected=month == selected,
                current=is_current,
                minor=_minor(month, index, every, chosen),
                show_year=index == 0 or month.month == 1,
            )
        )
    tallest = max(bars, key=lambda bar: max(bar.total, bar.projected or bar.total))
    return Chart(tuple(bars), ticks, top, tallest)


def _y(amount: Decimal, top: Decimal) -> int:
    """The pixel row of `amount` on an axis from zero (the plot's bottom) to `top`."""
    plot = PLOT_BOTTOM - PLOT_TOP
    height = (amount * plot / top).to_integral_value(rounding=ROUND_HALF_UP)
    return PLOT_BOTTOM - int(height)


def _percent(value: Decimal) -> Decimal:
    return value.quantize(_PERCENT, rounding=ROUND_HALF_UP)


def _minor(month: Month, index: int, every: int, chosen: int | None) -> bool:
    """Whether a month's label is left out on a narrow screen: the chosen month is always
    labelled, then one month in `every`, except those too close to the chosen one."""
    if index == chosen:
        return False
    if (month.month - 1) % every != 0:
        return True
    return chosen is not None and abs(index - chosen) < _LABEL_GAP[every]


_LABEL_GAP = {1: 1, 3: 2, 6: 3, 12: 5}
"""How many slots apart labels must be on a narrow screen, by how often months are labelled."""


def _label_every(months: int) -> int:
    """On a narrow screen, one month in this many is labelled: a divisor of 12, so that
    January always is."""
    if months <= 6:
        return 1
    if months <= 18:
        return 3
    if months <= 36:
        return 6
    return 12
