"""The one month request every view of a month's figures asks: the month, its price and the
month before, or a refusal with its status and a message a person understands."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from billing_app.extensions import db
from billing_app.figures.month_request import (
    NO_PRICE,
    NOT_AVAILABLE,
    MonthRefusal,
    MonthRequest,
    month_before,
    month_request,
)
from billing_app.figures.months import FIRST_MONTH, Month
from billing_app.models import Price
from tests.factories import make_organisation

TODAY = dt.date(2026, 5, 12)


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield
        db.session.remove()


def test_a_month_with_its_price_and_the_month_before(ctx):
    organisation = make_organisation()
    db.session.add(
        Price(
            organisation=organisation,
            from_month=dt.date(2026, 4, 1),
            unit_price=Decimal("3.25"),
            currency="eur",
        )
    )
    db.session.commit()
    asked = month_request(organisation, "2026-04", TODAY)
    assert isinstance(asked, MonthRequest)
    assert (asked.month, asked.unit_price, asked.currency) == (
        Month(2026, 4),
        Decimal("3.25"),
        "eur",
    )
    assert asked.previous == Month(2026, 3)
    assert asked.current == Month(2026, 5) == asked.months[0]
    assert month_request(organisation, "2026-03", TODAY).unit_price == Decimal("3.00")


def test_january_2026_has_no_month_before(ctx):
    asked = month_request(make_organisation(), "2026-01", TODAY)
    assert isinstance(asked, MonthRequest)
    assert asked.previous is None
    assert month_before(FIRST_MONTH) is None
    assert month_before(Month(2026, 2)) == FIRST_MONTH


def test_no_value_is_the_current_month_only_where_asked(ctx):
    organisation = make_organisation()
    assert month_request(organisation, None, TODAY, current_if_missing=True).month == Month(2026, 5)
    refused = month_request(organisation, None, TODAY, what="report")
    assert isinstance(refused, MonthRefusal)
    assert (refused.status, refused.title) == (NOT_AVAILABLE, "No report for that month")
    assert refused.message == "Choose a month, written as YYYY-MM (for example 2026-03)."


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-13", "“2026-13” is not a month. Write it as YYYY-MM, for example 2026-03."),
        ("x" * 30, f"“{'x' * 20}…” is not a month. Write it as YYYY-MM, for example 2026-03."),
        ("2025-12", "Usage is available from January 2026; December 2025 is earlier."),
        ("2026-06", "June 2026 has not started yet; the latest month is May 2026."),
    ],
)
def test_a_month_that_cannot_be_asked_for_is_refused_with_400(ctx, value, message):
    refused = month_request(make_organisation(), value, TODAY, what="export")
    assert isinstance(refused, MonthRefusal)
    assert (refused.status, refused.title, refused.message) == (
        NOT_AVAILABLE,
        "No export for that month",
        message,
    )
    assert not refused.no_price
    assert refused.month == refused.current == Month(2026, 5)


def test_a_month_without_a_price_is_refused_with_the_no_price_problem(ctx):
    organisation = make_organisation()
    organisation.prices[0].from_month = dt.date(2026, 3, 1)
    db.session.commit()
    refused = month_request(organisation, "2026-02", TODAY)
    assert isinstance(refused, MonthRefusal)
    assert refused.no_price and refused.status == NO_PRICE == 409
    assert refused.month == Month(2026, 2)
    assert refused.title == "No price for that month"
    assert refused.message.startswith("There is no unit price for February 2026")
    # March has a price, the month before it none: nothing to compare with.
    asked = month_request(organisation, "2026-03", TODAY)
    assert isinstance(asked, MonthRequest) and asked.previous is None
