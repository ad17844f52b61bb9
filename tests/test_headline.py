"""The month's headline: cost, users, unit price, change against the month before and, for the
current month, the projected month-end cost, pinned to the cent; and the page showing them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select

from billing_app.extensions import db
from billing_app.figures import cache as figures_cache
from billing_app.figures.calculator import month_totals
from billing_app.figures.headline import headline
from billing_app.figures.months import FIRST_MONTH, Month, today_utc
from billing_app.formats import format_money
from billing_app.models import Organisation, Price
from tests.factories import ALWAYS, add_tenant, make_organisation
from tests.pages import parse, summary_region

TODAY = dt.date(2026, 3, 10)
MARCH = Month(2026, 3)
FEBRUARY = Month(2026, 2)
SUMMARY = "/settings/usage/summary"
HTMX = {"HX-Request": "true"}
MINUS = "\N{MINUS SIGN}"


def northwind() -> Organisation:
    return db.session.scalar(select(Organisation).filter_by(slug="northwind-msp"))


@pytest.fixture
def march(app, organisation) -> Organisation:
    """Northwind on 10 March 2026 ($3.00 a user, $4.00 from April): a tenant paused from 20 to
    24 March, one offboarded on 15 March, and one with a user whose period ended on 4 March
    beside one billable throughout. Every user was billable all of January and February."""
    with app.app_context():
        org = northwind()
        db.session.add(
            Price(
                organisation_id=org.id,
                from_month=dt.date(2026, 4, 1),
                unit_price=Decimal("4.00"),
                currency="usd",
            )
        )
        db.session.commit()
        add_tenant(
            org, "Contoso Ltd", pauses=(("2026-03-20", "2026-03-25"),), users=(("Grace", ALWAYS),)
        )
        add_tenant(org, "Tailspin Toys", offboarded_on="2026-03-15", users=(("Mary", ALWAYS),))
        add_tenant(
            org,
            "Fabrikam",
            users=(("Alan", (("2025-12-01", "2026-03-05"),)), ("Ada", ALWAYS)),
        )
        db.session.expunge_all()
    return organisation


def headline_of(app, month: Month, today: dt.date = TODAY, slug: str = "northwind-msp"):
    with app.app_context():
        org = db.session.scalar(select(Organisation).filter_by(slug=slug))
        return headline(org, month, today, month_totals)


# --- The figures -----------------------------------------------------------------------------


def test_month_to_date_counts_the_days_so_far(app, march):
    shown = headline_of(app, MARCH)
    # 10 of 31 days for Grace, Mary and Ada ($0.97 each); Alan's 4 days ($0.39).
    assert shown.month_to_date and shown.last_counted_day == TODAY
    assert shown.cost == Decimal("3.30")
    assert shown.billable_users == 4
    assert shown.unit_price == Decimal("3.00") and shown.currency == "usd"


def test_projection_counts_the_recorded_month_to_its_end_at_the_months_price(app, march):
    shown = headline_of(app, MARCH)
    # Grace: 31 days less the pause of 20-24 March = 26 days, $3 * 26/31 = $2.52.
    # Mary: her tenant is offboarded on 15 March, so 14 days, $3 * 14/31 = $1.35.
    # Alan: his period ended on 5 March; he stays at his 4 days, $0.39.
    # Ada: billable throughout, $3.00. April's $4.00 does not apply.
    assert shown.projected_cost == Decimal("2.52") + Decimal("1.35") + Decimal("0.39") + 3
    assert shown.projected_cost == Decimal("7.26")


def test_projection_is_the_month_counted_on_its_last_day(app, march):
    with app.app_context():
        whole_month = month_totals(northwind(), MARCH, dt.date(2026, 3, 31))
    assert headline_of(app, MARCH).projected_cost == whole_month.cost
    # On the last day the projection is the month to date.
    last_day = headline_of(app, MARCH, dt.date(2026, 3, 31))
    assert last_day.projected_cost == last_day.cost == Decimal("7.26")


def test_current_month_change_compares_the_projection_with_the_month_before(app, march):
    change = headline_of(app, MARCH).change
    # February: four users, 28 of 28 days, $3.00 each.
    assert change.previous_month == FEBRUARY
    assert change.previous_cost == Decimal("12.00")
    assert change.projected
    assert change.amount == Decimal("-4.74")
    assert change.percent == Decimal("-39.5")


def test_past_month_has_no_projection_and_compares_its_cost(app, march):
    shown = headline_of(app, FEBRUARY)
    assert not shown.month_to_date and shown.projected_cost is None
    assert shown.cost == Decimal("12.00")
    assert (shown.change.amount, shown.change.percent, shown.change.projected) == (
        Decimal("0.00"),
        Decimal("0.0"),
        False,
    )


def test_january_2026_has_no_month_before(app, march):
    shown = headline_of(app, FIRST_MONTH)
    assert shown.first_month
    assert shown.change is None
    assert shown.cost == Decimal("12.00")


def test_a_month_before_of_zero_has_an_amount_but_no_percentage(app, organisation):
    with app.app_context():
        new = make_organisation("new-msp")
        add_tenant(new, "Contoso Ltd", onboarded_on="2026-03-01", users=(("Grace", ALWAYS),))
    shown = headline_of(app, MARCH, slug="new-msp")
    assert shown.change.previous_cost == Decimal("0.00")
    assert shown.change.amount == shown.projected_cost == Decimal("3.00")
    assert shown.change.percent is None
    nothing = headline_of(app, MARCH, slug="northwind-msp")
    assert nothing.cost == nothing.change.amount == Decimal("0.00")
    assert nothing.change.percent is None


def test_the_cached_headline_is_the_calculators(app, march):
    with app.app_context():
        org = northwind()
        cached = figures_cache.month_headline(org, MARCH, TODAY)
        again = figures_cache.month_headline(org, MARCH, TODAY)
    assert cached == again == headline_of(app, MARCH)


# --- The page --------------------------------------------------------------------------------


def text_of(region, element_id: str) -> str | None:
    element = region.by_id(element_id)
    return None if element is None else element.text


def test_page_shows_the_current_months_headline(app, auth, march):
    today = today_utc()
    current = Month.of(today)
    expected = headline_of(app, current, today)
    auth.as_role("full_member")
    page = parse(auth.client.get("/settings/usage").get_data(as_text=True))
    shown = page.by_id("usage-headline")
    assert text_of(shown, "usage-month-heading") == current.label
    assert text_of(shown, "headline-cost") == format_money(expected.cost, "usd")
    assert text_of(shown, "headline-projection") == format_money(expected.projected_cost, "usd")
    assert text_of(shown, "headline-users") == f"{expected.billable_users:,}"
    assert text_of(shown, "unit-price") == format_money(expected.unit_price, "usd")
    change = expected.change
    sign = "+" if change.amount > 0 else MINUS if change.amount < 0 else ""
    assert text_of(shown, "headline-change") == sign + format_money(abs(change.amount), "usd")
    assert text_of(shown, "headline-previous") == (
        f"projected month end vs {format_money(change.previous_cost, 'usd')}"
    )
    assert "estimate" in shown.text
    assert "next month's price does not" in text_of(shown, "projection-rule")


def test_page_shows_a_past_months_figures_by_id(app, auth, march):
    auth.as_role("admin")
    region = summary_region(
        auth.client.get(SUMMARY, query_string={"month": "2026-02"}, headers=HTMX)
    )
    assert text_of(region, "headline-cost") == "$12.00"
    assert text_of(region, "headline-users") == "4"
    assert text_of(region, "unit-price") == "$3.00"
    assert text_of(region, "headline-change") == "$0.00"
    assert text_of(region, "headline-change-percent") == "0.0%"
    assert text_of(region, "headline-previous") == "vs $12.00"
    assert "Change vs January 2026" in region.by_id("usage-headline").text
    assert region.by_id("headline-projection") is None
    assert region.by_id("projection-rule") is None
    # The month's downloads sit with its headline.
    downloads = region.by_id("usage-headline")
    assert (
        downloads.by_id("download-report").attrs["href"] == "/settings/usage/report?month=2026-02"
    )
    assert downloads.by_id("export-tenants-csv") is not None
    assert downloads.by_id("export-users-csv") is not None


def test_page_says_january_is_the_first_month(app, auth, march):
    auth.as_role("billing")
    region = summary_region(
        auth.client.get(SUMMARY, query_string={"month": "2026-01"}, headers=HTMX)
    )
    assert text_of(region, "headline-change") == "First month"
    assert "nothing to compare with" in text_of(region, "headline-previous")
    assert region.by_id("headline-change-percent") is None


def test_page_shows_no_percentage_after_a_month_of_zero(app, auth, organisation):
    with app.app_context():
        add_tenant(
            northwind(), "Contoso Ltd", onboarded_on="2026-02-01", users=(("Grace", ALWAYS),)
        )
    auth.as_role("admin")
    region = summary_region(
        auth.client.get(SUMMARY, query_string={"month": "2026-02"}, headers=HTMX)
    )
    assert text_of(region, "headline-change") == "+$3.00"
    assert region.by_id("headline-change-percent") is None
    assert text_of(region, "headline-previous") == "vs $0.00"


def test_a_price_change_is_named_and_its_share_of_the_change_given(app, auth, march):
    april = Month(2026, 4)
    expected = headline_of(app, april, today_utc()).change
    assert (expected.previous_unit_price, expected.unit_price) == (Decimal("3.00"), Decimal("4.00"))
    # April's 2 users for the whole month: $8.00, of which $2.00 is the dollar more a user.
    assert expected.from_price == Decimal("2.00")
    assert expected.from_price + expected.from_usage == expected.amount
    auth.as_role("billing")
    region = summary_region(
        auth.client.get(SUMMARY, query_string={"month": "2026-04"}, headers=HTMX)
    )
    usage = format_money(abs(expected.from_usage), "usd")
    assert text_of(region, "headline-price-change").replace(" :", ":") == (
        "Price rose from $3.00 to $4.00 on 1 Apr 2026: +$2.00 of the change is the price, "
        f"{MINUS}{usage} is usage."
    )
    # A month at the same price as the month before says nothing of prices.
    same = summary_region(auth.client.get(SUMMARY, query_string={"month": "2026-03"}, headers=HTMX))
    assert same.by_id("headline-price-change") is None
