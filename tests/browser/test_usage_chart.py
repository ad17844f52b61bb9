"""The chart in Chromium: as wide as its card, labels readable on a phone without colliding,
and each bar a link reached by keyboard."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from billing_app.extensions import db
from billing_app.figures.calculator import monthly_totals
from billing_app.figures.months import today_utc
from billing_app.formats import format_money
from billing_app.models import Organisation
from tests.browser.conftest import FOCUSED, sign_in
from tests.factories import ALWAYS, PASSWORD, add_tenant

pytestmark = pytest.mark.browser

LABELS = """() => [...document.querySelectorAll('#usage-chart text')]
  .filter(t => getComputedStyle(t).display !== 'none')
  .map(t => { const box = t.getBoundingClientRect();
    return {text: t.textContent.trim(), size: parseFloat(getComputedStyle(t).fontSize),
            left: box.left, right: box.right, top: box.top, bottom: box.bottom,
            height: box.height, kind: t.getAttribute('class')}; })"""


@pytest.fixture
def usage(app, organisation) -> list:
    with app.app_context():
        org = db.session.scalar(select(Organisation).filter_by(slug="northwind-msp"))
        add_tenant(org, "Contoso Ltd", users=tuple((f"User {n}", ALWAYS) for n in range(40)))
        add_tenant(org, "Fabrikam", onboarded_on="2026-05-01", users=(("Ada", ALWAYS),))
        return monthly_totals(org, today_utc())


def signed_in(page: Page, width: int) -> Page:
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, "full_member@northwind-msp.example", PASSWORD)
    expect(page.locator("#usage-chart svg")).to_be_visible()
    return page


def overlapping(boxes: list[dict]) -> list[tuple[str, str]]:
    return [
        (a["text"], b["text"])
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
        if a["left"] < b["right"] and b["left"] < a["right"]
        and a["top"] < b["bottom"] and b["top"] < a["bottom"]
    ]  # fmt: skip


@pytest.mark.parametrize("width", [360, 390, 1280])
def test_labels_are_readable_and_apart(page, usage, width):
    page = signed_in(page, width)
    labels = page.evaluate(LABELS)
    months = [label for label in labels if "chart-label" in label["kind"]]
    ticks = [label for label in labels if "chart-tick" in label["kind"]]
    assert len(ticks) >= 3 and ticks[0]["text"] == "$0"
    assert "Jan" in [label["text"] for label in months]
    for label in labels:
        assert label["size"] >= 10, label
        assert label["height"] >= 10, label  # as drawn: nothing scales the text down
    assert overlapping(labels) == []
    shown = [m["text"] for m in months if "chart-year" not in m["kind"]]
    if width == 1280:  # every month labelled
        assert shown == [month.label[:3] for month, _ in usage]
    else:  # every third, and the chosen (current) month
        assert len(shown) < len(usage) and shown[-1] == usage[-1][0].label[:3]


def test_chart_fills_its_card(page, usage):
    page = signed_in(page, 1280)
    frame = page.locator("#usage-month").bounding_box()
    chart = page.locator("#usage-chart svg").bounding_box()
    ticks = page.locator("#usage-chart .chart-tick").first.bounding_box()
    # The plot runs from just right of the axis's labels to the card's padding.
    assert ticks["x"] >= frame["x"] - 1
    assert chart["x"] + chart["width"] == pytest.approx(frame["x"] + frame["width"], abs=1)
    assert chart["width"] >= 0.9 * frame["width"]


def test_a_bar_is_a_link_reached_by_keyboard_and_enter_focuses_its_month(page, usage):
    page = signed_in(page, 1280)
    month, total = usage[0]
    name = f"{month.label}: {format_money(total, 'usd')}"
    bar = page.get_by_role("link", name=name, exact=True)
    expect(bar).to_have_attribute("href", f"/settings/usage?month={month}#usage-month-heading")
    for _ in range(80):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        if page.evaluate("document.activeElement.getAttribute('aria-label')") == name:
            break
    else:
        raise AssertionError(f"Tab never reached {name!r}")
    assert focused["outline"], focused
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"/settings/usage?month={month}#usage-month-heading")
    heading = page.locator("#usage-month-heading")
    expect(heading).to_have_text(month.label)
    # Focus lands on the chosen month's heading, not on the page's body: Tab goes on from there.
    expect(heading).to_be_focused()
    expect(page.get_by_role("link", name=name, exact=True)).to_have_attribute(
        "aria-current", "true"
    )
